"""Pages people see: the payer's cashier (H5), later the merchant portal and operations console."""
