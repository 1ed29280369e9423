"""A synthetic population calibrated to TPMAP's published 2561 figures: `python -m tools.demo`.

See tools/demo/README.md for the commands, what is exact and what is close, and where the data
comes from.
"""
