"""Operators: the bank staff who run the platform, their roles, API tokens and four-eyes approvals."""
