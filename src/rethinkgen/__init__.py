"""rethinkgen: the randomization tests of Zhang et al., ICLR 2017, as a toolkit."""

__version__ = "0.1.0"
