"""The local stack: moto server, the Genesys Cloud simulator and the local runner. Never shipped."""
