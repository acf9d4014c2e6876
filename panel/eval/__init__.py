"""Calibration: how far the panel's personas can be trusted, measured on cards and rendered as a report."""
