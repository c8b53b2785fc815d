"""tickml's model behind servers other than its own API.

`mlserver` is the runtime MLServer (Seldon's Open Inference Protocol V2 server, the one
KServe runs) loads by its import path; `mlserver_settings` writes the files MLServer
reads. Only the runtime imports `mlserver`, and only MLServer imports the runtime, so
tickml imports, and `tickml mlserver write` runs, without MLServer installed.
"""
