"""Tests of custscore.analytics."""
