"""The native stack: influxd, kapacitord and tickml's services as local processes."""
