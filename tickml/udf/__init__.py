"""The Kapacitor UDF side of tickml: wire protocol, scoring handler, socket server."""
