"""custscore: open customer-intelligence scoring on MongoDB."""

__version__ = "0.1.0"
