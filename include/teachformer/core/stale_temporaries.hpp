// Cleaning up after killed runs across a whole folder tree (the per-folder remove_stale_temporaries is in fs.hpp).
#pragma once
#include "teachformer/core/fs.hpp"

namespace teachformer {

/// remove_stale_temporaries in `root` and every folder below it (symbolic links are not followed; a writer's own
/// ".tmp-..." folder is removed whole or kept, never entered). Returns the count removed.
int remove_stale_temporaries_under(const fs::path& root);

}  // namespace teachformer
