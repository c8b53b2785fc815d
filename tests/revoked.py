"""Putting InfluxDB's subscription in the state a revoked token leaves it in.

A kapacitord that started without its InfluxDB configured (as tickml's first start
phase once did) revoked the token in the subscription's destination; the next
kapacitord kept that subscription, as it still named its host, and refused every
write InfluxDB forwarded. The same state, made directly: the subscription replaced
by one of the same name whose token has the right form (the cluster's name, then
random bytes) but was never granted.
"""

from __future__ import annotations

import base64
import os
from urllib.parse import urlsplit, urlunsplit

from tickml.influx import InfluxClient
from tickml.subscriptions import list_subscriptions


def revoke_subscription_token(admin: InfluxClient, database: str, cluster: str = "default"
                              ) -> str:
    """Replace `database`'s Kapacitor subscription by one carrying a token never granted.

    Returns the subscription's name.
    """
    [subscription] = [s for s in list_subscriptions(admin) if s.database == database]
    parts = urlsplit(subscription.destinations[0])
    token = base64.urlsafe_b64encode(f"{cluster};".encode() + os.urandom(64)).decode()
    destination = urlunsplit((parts.scheme, f"~subscriber:{token.rstrip('=')}@"
                              f"{parts.hostname}:{parts.port}", parts.path, "", ""))
    on = f'ON "{database}"."{subscription.retention_policy}"'
    admin.query(f'DROP SUBSCRIPTION "{subscription.name}" {on}', method="POST")
    admin.query(f"CREATE SUBSCRIPTION \"{subscription.name}\" {on} DESTINATIONS ANY "
                f"'{destination}'", method="POST")
    return subscription.name
