"""The edge layer: the camera agent, door drivers and event sinks.

A client of the same domain functions as the API and the console (ARCHITECTURE.md, layers):
it sends frames and credentials to ``access`` (in process or over the decide API) and obeys
the answer. No business rule lives here.
"""
