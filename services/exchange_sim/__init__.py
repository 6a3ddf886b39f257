"""exchange_sim: a Bybit V5 venue on real sockets (public WS + REST), seeded and fault-injectable."""
