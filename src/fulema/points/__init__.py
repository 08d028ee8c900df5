"""Points: accounts kept as lots, earn, redeem, expire (see docs/points.md)."""
