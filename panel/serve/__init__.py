"""`panel serve`: the built site and its JSON API (community votes, card submissions), on
Starlette under uvicorn.

app.py assembles the app and runs it; wire.py the HTTP connection (header cap and deadline,
connection caps, the server's own refusals); api.py the endpoints; guard.py what every request
passes (allowed hosts, header caps, security headers and the error shape, the voter cookie, the
origin check, body caps, the client's networks); desk.py the store, reached from lanes of its
own with a deadline per call, and the health probe; keeper.py the site rebuilt when the store
changes; files.py the static files; keys.py the key that signs voter cookies.
"""
