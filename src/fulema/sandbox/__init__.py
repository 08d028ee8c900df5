"""Protocol-accurate channel servers and payer wallets, for the demo and the tests."""
