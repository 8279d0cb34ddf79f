// Owner of the shared precompiled header (see tf_setup_pch).
