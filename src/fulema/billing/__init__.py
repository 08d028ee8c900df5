"""Bill payment (write-off at billers, refund past the deadline) and charity donations; docs/billing.md."""
