"""The double-entry ledger: accounts, immutable journal entries, posting rules, balances."""
