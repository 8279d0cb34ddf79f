// Where training and validation cases come from: held in memory, or read on demand from disk through a cache of
// bounded size, so that a dataset does not have to fit in RAM (the loader's worker threads read ahead and hide the
// I/O). Both kinds hand out immutable cases shared by pointer; every method is thread-safe.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "teachformer/data/sampler.hpp"

namespace teachformer::data {

/// A list of cases, loaded when asked for.
class CaseSource {
 public:
  virtual ~CaseSource() = default;
  /// Number of cases.
  virtual size_t size() const = 0;
  /// Case id at `index` (no loading).
  virtual const std::string& id(size_t index) const = 0;
  /// The case at `index` (loaded on demand; thread-safe). IndexError-free: InvalidArgument for a bad index.
  virtual std::shared_ptr<const TrainingCase> get(size_t index) const = 0;
  /// Bytes of case data currently held in memory.
  virtual int64_t resident_bytes() const = 0;
  /// True when every case stays in memory.
  virtual bool in_memory() const = 0;
};

/// Cases held in memory.
std::shared_ptr<const CaseSource> in_memory_cases(std::vector<TrainingCase> cases);

/// Reads case `id` (image, label, extras; foreground indexed) from disk.
using CaseLoader = std::function<TrainingCase(const std::string& id)>;

/// Cases read on demand by `load` and kept in a least-recently-used cache of at most `max_bytes` (image, label and
/// extras; at least one case is always kept). Concurrent requests for the same case load it once.
std::shared_ptr<const CaseSource> cached_cases(std::vector<std::string> ids, CaseLoader load, int64_t max_bytes);

/// The cases of several sources one after the other (e.g. labelled then unlabelled cases).
std::shared_ptr<const CaseSource> concatenated_cases(std::vector<std::shared_ptr<const CaseSource>> parts);

/// Bytes of a case's tensors (image, label, extras, foreground index).
int64_t case_bytes(const TrainingCase& c);

}  // namespace teachformer::data
