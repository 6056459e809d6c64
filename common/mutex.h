// A reader-writer mutex that ThreadSanitizer can see. Debian's Abseil is
// built without TSan annotations, so races through absl::Mutex go unseen
// and its deadlock detector's own bookkeeping is reported as races; this
// one is built on std::mutex and std::condition_variable, which TSan
// understands. Writers are preferred: once a writer waits, new readers wait
// behind it, so a steady stream of queries cannot starve an upsert. The
// Abseil thread-safety annotations keep the compile-time lock checks.
#ifndef QUIVER_COMMON_MUTEX_H_
#define QUIVER_COMMON_MUTEX_H_

#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace quiver {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    std::unique_lock<std::mutex> l(mu_);
    ++writers_waiting_;
    writer_cv_.wait(l, [this] { return !writer_ && readers_ == 0; });
    --writers_waiting_;
    writer_ = true;
  }
  // Takes the lock only if nobody holds it (readers included); true if taken.
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    std::lock_guard<std::mutex> l(mu_);
    if (writer_ || readers_ > 0) return false;
    writer_ = true;
    return true;
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    {
      std::lock_guard<std::mutex> l(mu_);
      writer_ = false;
    }
    writer_cv_.notify_one();
    reader_cv_.notify_all();
  }
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION() {
    std::unique_lock<std::mutex> l(mu_);
    reader_cv_.wait(l, [this] { return !writer_ && writers_waiting_ == 0; });
    ++readers_;
  }
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION() {
    bool last;
    {
      std::lock_guard<std::mutex> l(mu_);
      last = --readers_ == 0;
    }
    if (last) writer_cv_.notify_one();
  }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}
  void AssertReaderHeld() const ABSL_ASSERT_SHARED_LOCK() {}

 private:
  std::mutex mu_;
  std::condition_variable writer_cv_, reader_cv_;
  int readers_ = 0;          // Guarded by mu_.
  int writers_waiting_ = 0;  // Guarded by mu_.
  bool writer_ = false;      // Guarded by mu_.
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class ABSL_SCOPED_LOCKABLE ReaderMutexLock {
 public:
  explicit ReaderMutexLock(Mutex* mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) { mu_->ReaderLock(); }
  ~ReaderMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->ReaderUnlock(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace quiver

#endif  // QUIVER_COMMON_MUTEX_H_
