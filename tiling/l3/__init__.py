"""L3: refined buildings of a district (real roof forms, textures, imported models)."""
