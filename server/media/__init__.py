"""Where a call's media runs: in this process, or in media worker processes.

``MediaHost`` is the one interface the call service uses: ``LocalMediaHost`` runs the
bridge and the recorder in the calling process (a media worker uses it, and so do tests
with media workers switched off); ``MediaWorkerPool`` places each call on one of the
node's media worker processes and talks to it over IPC, so the serving process never
carries media.
"""
