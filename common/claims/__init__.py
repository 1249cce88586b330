"""Firing claims: which dispatcher runs a given firing."""
