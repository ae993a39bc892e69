"""Brahma: a terminal control console for progressive delivery."""
