"""Explanations: reason codes per decision, global importance, comparisons with production."""
