"""Synthetic sample data for the booking app: generator only, no number is defined here."""
