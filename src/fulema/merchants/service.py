"""The merchants context's public API: the one module other contexts, the API router and tests
import. The use cases live in the sibling modules by subject and are re-exported here unchanged.

Each use case opens one transaction; each change writes its audit row and its outbox event in
that same transaction (`lifecycle.record`), so neither can exist without the other.

Other contexts call only the "payments-facing" functions (`get_app_credential`,
`default_app_for_merchant`, `check_can_pay`, `check_can_pay_in`, `get_plate`, `get_store`,
`fee_rate_bps`, ...) and get frozen dataclasses, never ORM rows.
"""

from __future__ import annotations

from fulema.merchants.checks import MerchantSnapshot as MerchantSnapshot
from fulema.merchants.checks import check_can_pay as check_can_pay
from fulema.merchants.checks import check_can_pay_in as check_can_pay_in
from fulema.merchants.checks import check_can_pay_in_with as check_can_pay_in_with
from fulema.merchants.checks import check_merchant as check_merchant
from fulema.merchants.checks import pay_in_check_with as pay_in_check_with
from fulema.merchants.checks import pay_in_row as pay_in_row
from fulema.merchants.checks import pays_in as pays_in
from fulema.merchants.credentials import CREDENTIAL_CACHE_SECONDS as CREDENTIAL_CACHE_SECONDS
from fulema.merchants.credentials import AppCredential as AppCredential
from fulema.merchants.credentials import AppView as AppView
from fulema.merchants.credentials import IssuedSecret as IssuedSecret
from fulema.merchants.credentials import create_app_credential as create_app_credential
from fulema.merchants.credentials import default_app_for_merchant as default_app_for_merchant
from fulema.merchants.credentials import disable_app as disable_app
from fulema.merchants.credentials import get_app_credential as get_app_credential
from fulema.merchants.credentials import rotate_secret as rotate_secret
from fulema.merchants.credentials import set_notify_url as set_notify_url
from fulema.merchants.demo_seed import DEMO_APP_ID as DEMO_APP_ID
from fulema.merchants.demo_seed import DEMO_LICENCE as DEMO_LICENCE
from fulema.merchants.demo_seed import DEMO_OPERATOR as DEMO_OPERATOR
from fulema.merchants.demo_seed import DEMO_PLATE as DEMO_PLATE
from fulema.merchants.demo_seed import DEMO_SECRET as DEMO_SECRET
from fulema.merchants.demo_seed import DemoMerchant as DemoMerchant
from fulema.merchants.demo_seed import onboard_demo_merchant as onboard_demo_merchant
from fulema.merchants.fees import FeeRateView as FeeRateView
from fulema.merchants.fees import fee_rate_bps as fee_rate_bps
from fulema.merchants.fees import set_fee_rate as set_fee_rate
from fulema.merchants.four_eyes import approval_actions as approval_actions
from fulema.merchants.lifecycle import EventView as EventView
from fulema.merchants.lifecycle import MerchantView as MerchantView
from fulema.merchants.lifecycle import activate as activate
from fulema.merchants.lifecycle import apply_merchant as apply_merchant
from fulema.merchants.lifecycle import approve as approve
from fulema.merchants.lifecycle import change_settlement_account as change_settlement_account
from fulema.merchants.lifecycle import close as close
from fulema.merchants.lifecycle import freeze as freeze
from fulema.merchants.lifecycle import get_merchant_status as get_merchant_status
from fulema.merchants.lifecycle import hold_settlement as hold_settlement
from fulema.merchants.lifecycle import list_events as list_events
from fulema.merchants.lifecycle import reject as reject
from fulema.merchants.lifecycle import release_settlement as release_settlement
from fulema.merchants.lifecycle import resubmit as resubmit
from fulema.merchants.lifecycle import unfreeze as unfreeze
from fulema.merchants.plates import PlateInfo as PlateInfo
from fulema.merchants.plates import PlateView as PlateView
from fulema.merchants.plates import create_plate as create_plate
from fulema.merchants.plates import disable_plate as disable_plate
from fulema.merchants.plates import get_plate as get_plate
from fulema.merchants.profile import RegistrationFacts as RegistrationFacts
from fulema.merchants.profile import registration_facts as registration_facts
from fulema.merchants.queries import MerchantDetail as MerchantDetail
from fulema.merchants.queries import MerchantPage as MerchantPage
from fulema.merchants.queries import get_merchant as get_merchant
from fulema.merchants.queries import list_merchants as list_merchants
from fulema.merchants.reveal import REVEALABLE as REVEALABLE
from fulema.merchants.reveal import Revealed as Revealed
from fulema.merchants.reveal import reveal_contact as reveal_contact
from fulema.merchants.stores import StoreInfo as StoreInfo
from fulema.merchants.stores import TerminalInfo as TerminalInfo
from fulema.merchants.stores import add_store as add_store
from fulema.merchants.stores import add_terminal as add_terminal
from fulema.merchants.stores import disable_store as disable_store
from fulema.merchants.stores import disable_terminal as disable_terminal
from fulema.merchants.stores import get_store as get_store
from fulema.merchants.stores import speaker_by_id as speaker_by_id
from fulema.merchants.stores import speakers_for_order as speakers_for_order
from fulema.merchants.stores import speakers_for_stores as speakers_for_stores
from fulema.merchants.stores import speakers_for_stores_in as speakers_for_stores_in
