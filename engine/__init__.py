"""The pipeline engine: model, events, aggregate, scheduler, store and executor.

Imports nothing of ours outside itself; no click, no HTTP.
"""
