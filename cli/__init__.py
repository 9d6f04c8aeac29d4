"""Thin command-line front ends: argument parsing, progress, error reporting. No logic lives here."""
