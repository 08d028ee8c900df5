"""Sub-merchant onboarding (进件/报备): each merchant registered at each channel it uses."""
