"""Use cases: plain arguments in, result dataclasses out; never print, never see argv."""
