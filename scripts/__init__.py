"""Maintainer scripts, run from a checkout of the repository; none of this is in the installed package."""
