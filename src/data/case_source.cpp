#include "teachformer/data/case_source.hpp"

#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <set>

#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::data {
namespace {

int64_t tensor_bytes(const torch::Tensor& t) { return t.defined() ? t.numel() * int64_t(t.element_size()) : 0; }

class InMemoryCases final : public CaseSource {
 public:
  explicit InMemoryCases(std::vector<TrainingCase> cases) {
    for (auto& c : cases) {
      bytes_ += case_bytes(c);
      cases_.push_back(std::make_shared<const TrainingCase>(std::move(c)));
    }
  }
  size_t size() const override { return cases_.size(); }
  const std::string& id(size_t i) const override { return at(i)->id; }
  std::shared_ptr<const TrainingCase> get(size_t i) const override { return at(i); }
  int64_t resident_bytes() const override { return bytes_; }
  bool in_memory() const override { return true; }

 private:
  const std::shared_ptr<const TrainingCase>& at(size_t i) const {
    TF_CHECK(i < cases_.size(), InvalidArgument, "case index ", i, " out of range (", cases_.size(), " cases)");
    return cases_[i];
  }
  std::vector<std::shared_ptr<const TrainingCase>> cases_;
  int64_t bytes_ = 0;
};

class CachedCases final : public CaseSource {
 public:
  CachedCases(std::vector<std::string> ids, CaseLoader load, int64_t max_bytes)
      : ids_(std::move(ids)), load_(std::move(load)), max_bytes_(max_bytes) {
    TF_CHECK(load_, InvalidArgument, "cached cases: a loader is required");
    TF_CHECK(max_bytes_ > 0, InvalidArgument, "cached cases: the cache size must be positive, got ", max_bytes_);
  }
  size_t size() const override { return ids_.size(); }
  const std::string& id(size_t i) const override {
    TF_CHECK(i < ids_.size(), InvalidArgument, "case index ", i, " out of range (", ids_.size(), " cases)");
    return ids_[i];
  }
  bool in_memory() const override { return false; }
  int64_t resident_bytes() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return bytes_;
  }

  std::shared_ptr<const TrainingCase> get(size_t i) const override {
    const std::string& key = id(i);
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      auto it = entries_.find(i);
      if (it != entries_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second.position);
        return it->second.value;
      }
      if (!loading_.count(i)) break;
      loaded_.wait(lock);  // another thread is reading this case
    }
    loading_.insert(i);
    lock.unlock();
    std::shared_ptr<const TrainingCase> value;
    try {
      value = std::make_shared<const TrainingCase>(load_(key));
    } catch (...) {
      lock.lock();
      loading_.erase(i);
      loaded_.notify_all();
      throw;
    }
    const int64_t b = case_bytes(*value);
    lock.lock();
    loading_.erase(i);
    lru_.push_front(i);
    entries_[i] = Entry{value, lru_.begin(), b};
    bytes_ += b;
    // Evict the least recently used cases (never the one just loaded). A case still used by a batch being built
    // stays alive through its shared pointer until that batch is done with it.
    while (bytes_ > max_bytes_ && lru_.size() > 1) {
      const size_t victim = lru_.back();
      lru_.pop_back();
      auto e = entries_.find(victim);
      bytes_ -= e->second.bytes;
      entries_.erase(e);
    }
    loaded_.notify_all();
    return value;
  }

 private:
  struct Entry {
    std::shared_ptr<const TrainingCase> value;
    std::list<size_t>::iterator position;
    int64_t bytes = 0;
  };
  std::vector<std::string> ids_;
  CaseLoader load_;
  int64_t max_bytes_;
  mutable std::mutex mutex_;
  mutable std::condition_variable loaded_;
  mutable std::map<size_t, Entry> entries_;
  mutable std::list<size_t> lru_;
  mutable std::set<size_t> loading_;
  mutable int64_t bytes_ = 0;
};

class ConcatenatedCases final : public CaseSource {
 public:
  explicit ConcatenatedCases(std::vector<std::shared_ptr<const CaseSource>> parts) : parts_(std::move(parts)) {
    for (const auto& p : parts_) TF_CHECK(p != nullptr, InvalidArgument, "concatenated cases: a part is missing");
  }
  size_t size() const override {
    size_t n = 0;
    for (const auto& p : parts_) n += p->size();
    return n;
  }
  const std::string& id(size_t i) const override {
    const auto [part, j] = locate(i);
    return part->id(j);
  }
  std::shared_ptr<const TrainingCase> get(size_t i) const override {
    const auto [part, j] = locate(i);
    return part->get(j);
  }
  int64_t resident_bytes() const override {
    int64_t b = 0;
    for (const auto& p : parts_) b += p->resident_bytes();
    return b;
  }
  bool in_memory() const override {
    for (const auto& p : parts_)
      if (!p->in_memory()) return false;
    return true;
  }

 private:
  std::pair<const CaseSource*, size_t> locate(size_t i) const {
    size_t k = i;
    for (const auto& p : parts_) {
      if (k < p->size()) return {p.get(), k};
      k -= p->size();
    }
    TF_THROW(InvalidArgument, "case index ", i, " out of range (", size(), " cases)");
  }
  std::vector<std::shared_ptr<const CaseSource>> parts_;
};

}  // namespace

std::shared_ptr<const CaseSource> concatenated_cases(std::vector<std::shared_ptr<const CaseSource>> parts) {
  return std::make_shared<const ConcatenatedCases>(std::move(parts));
}

int64_t case_bytes(const TrainingCase& c) {
  int64_t b = tensor_bytes(c.image) + tensor_bytes(c.label);
  for (const auto& [_, t] : c.class_locations) b += tensor_bytes(t);
  for (const auto& [_, e] : c.extras) b += tensor_bytes(e.data);
  return b;
}

std::shared_ptr<const CaseSource> in_memory_cases(std::vector<TrainingCase> cases) {
  return std::make_shared<const InMemoryCases>(std::move(cases));
}

std::shared_ptr<const CaseSource> cached_cases(std::vector<std::string> ids, CaseLoader load, int64_t max_bytes) {
  return std::make_shared<const CachedCases>(std::move(ids), std::move(load), max_bytes);
}

}  // namespace teachformer::data
