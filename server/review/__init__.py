"""Compliance review of calls: the lifecycle's pure rules and the service applying them."""
