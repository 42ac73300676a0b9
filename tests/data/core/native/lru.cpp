#include <list>
#include <unordered_map>

namespace cache {

// A least-recently-used cache with O(1) get and put.
class LruCache {
 public:
  explicit LruCache(size_t capacity) : capacity_(capacity) {}

  // Look up a key and mark it as recently used.
  int get(int key) {
    auto it = index_.find(key);
    if (it == index_.end()) return -1;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second;
  }

 private:
  size_t capacity_;
  std::list<std::pair<int, int>> order_;
  std::unordered_map<int, std::list<std::pair<int, int>>::iterator> index_;
};

}  // namespace cache
