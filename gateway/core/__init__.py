"""The gateway's core commands: train, info, list, size, test, compare, debug, model transfer."""
