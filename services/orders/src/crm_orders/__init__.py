"""The orders service: sales orders against contracts, deliveries, the order overview (R-ORD-01, 02)."""
