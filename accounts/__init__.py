"""Users, co-ops, federations, memberships and authentication."""
