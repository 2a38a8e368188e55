"""HAMi's wire contract: resource names, annotation keys and the one codec for their values.

Nothing outside this package splits or joins annotation strings.
"""
