// Streams as queues, run on demand in a seeded random order that respects every event (streams.h).
#include "streams.h"

#include "runtime.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <vector>

struct CUstream_st {
  int id;
  bool blocking;  // created without cudaStreamNonBlocking: the legacy stream's work orders against it
  struct Op {
    uint64_t seq = 0;      // 1, 2, ... in issue order on this stream
    emu::StreamWork work;  // null for a wait
    bool collective = false;  // runs only when a synchronising call needs it (ranks must meet in it)
    int wait_stream = 0;   // a wait: until stream wait_stream has run its operation wait_seq
    uint64_t wait_seq = 0;
  };
  std::deque<Op> queue;
  uint64_t issued = 0, done = 0;  // sequence numbers of the last operation issued and the last one run
};

struct CUevent_st {
  int stream = 0;     // the stream of the latest record (0: never recorded, or on the legacy stream)
  uint64_t seq = 0;   // the record's operation on that stream
  std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now();  // when the record ran
};

namespace emu {

namespace {

// One lock for every queue; drains hold it while they run work (work never issues stream calls).
std::recursive_mutex g_mutex;
std::map<int, CUstream_st*> g_streams;  // live streams by id
int g_next_id = 1;
uint64_t g_picks = 0;  // draws of the interleaving so far
uint64_t g_queries = 0;  // draws of query answers so far
unsigned long long g_host_waits = 0;

bool is_legacy(cudaStream_t s) { return s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread; }

bool has_run(int stream, uint64_t seq) {
  auto it = g_streams.find(stream);
  return it == g_streams.end() || it->second->done >= seq;  // a destroyed stream ran everything first
}

uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Runs every operation with seq <= need[stream] and whatever they wait for, in a random order the events
// allow. `need` grows as waits name other streams' records. Other ready operations (not collectives) may
// run too, as a GPU runs them whenever it can: a stream's work may run before the host waits for it.
// Returns whether it ran any needed operation.
bool drain(std::map<int, uint64_t> need) {
  bool ran_needed = false;
  for (;;) {
    std::vector<CUstream_st*> needed, other;
    bool grew = false;
    for (auto& [id, s] : g_streams) {
      if (s->queue.empty()) continue;
      const CUstream_st::Op& op = s->queue.front();
      auto want = need.find(id);
      const bool is_needed = want != need.end() && op.seq <= want->second;
      if (!op.work && !has_run(op.wait_stream, op.wait_seq)) {
        if (is_needed && need[op.wait_stream] < op.wait_seq) {  // that stream's work up to the record
          need[op.wait_stream] = op.wait_seq;
          grew = true;
          break;  // `need` changed under the loop
        }
        continue;
      }
      if (is_needed) needed.push_back(s);
      else if (!op.collective) other.push_back(s);
    }
    if (grew) continue;
    if (needed.empty()) {
      // nothing needed can run, so everything needed has run (a wait's record is needed, and can run)
      return ran_needed;
    }
    const uint64_t draw = mix(schedule_seed() * 0x2545f4914f6cdd1dull + g_picks++);
    const bool pick_needed = draw % (needed.size() + other.size()) < needed.size();
    ran_needed |= pick_needed;
    CUstream_st* s = pick_needed ? needed[draw / 7 % needed.size()] : other[draw / 7 % other.size()];
    CUstream_st::Op op = std::move(s->queue.front());
    s->queue.pop_front();
    s->done = op.seq;  // also when the work faults: the stream goes on with its next operation
    if (op.work) op.work();
  }
}

// The host waits for `need`: counted when something needed had not run yet.
void wait_for(std::map<int, uint64_t> need) {
  if (drain(std::move(need))) ++g_host_waits;
}

void drain_all(bool blocking_only) {
  std::map<int, uint64_t> need;
  for (auto& [id, s] : g_streams)
    if (!blocking_only || s->blocking) need[id] = s->issued;
  wait_for(std::move(need));
}

// A query of work up to `seq` on `stream`: done, or drawn (run now and done, or not done yet).
bool query(int stream, uint64_t seq) {
  if (has_run(stream, seq)) return true;
  if (mix(schedule_seed() * 0x9e3779b97f4a7c15ull + g_queries++) % 2 == 0) return false;
  drain({{stream, seq}});
  return true;
}

uint64_t issue(CUstream_st* s, CUstream_st::Op op) {
  op.seq = ++s->issued;
  s->queue.push_back(std::move(op));
  return s->issued;
}

}  // namespace

void enqueue(cudaStream_t stream, StreamWork work, bool collective) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  if (is_legacy(stream)) {
    drain_all(/*blocking_only=*/true);
    work();
    return;
  }
  CUstream_st::Op op;
  op.work = std::move(work);
  op.collective = collective;
  issue(stream, std::move(op));
}

void stream_create(cudaStream_t* s, bool blocking) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  *s = new CUstream_st{g_next_id++, blocking, {}, 0, 0};
  g_streams[(*s)->id] = *s;
}

void stream_destroy(cudaStream_t s) {
  if (is_legacy(s)) return;
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  wait_for({{s->id, s->issued}});
  g_streams.erase(s->id);
  delete s;
}

void event_create(cudaEvent_t* e) { *e = new CUevent_st(); }

void event_destroy(cudaEvent_t e) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  synchronize_event(e);  // a pending record still writes the event
  delete e;
}

void event_record(cudaEvent_t e, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  if (is_legacy(stream)) {
    drain_all(/*blocking_only=*/true);
    *e = CUevent_st();
    return;
  }
  e->stream = stream->id;
  CUstream_st::Op record;
  record.work = [e] { e->t = std::chrono::steady_clock::now(); };
  e->seq = issue(stream, std::move(record));
}

void stream_wait_event(cudaStream_t stream, cudaEvent_t e) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  if (e->stream == 0) return;  // never recorded, or recorded on the legacy stream: already complete
  if (is_legacy(stream)) {     // the legacy stream's later work runs at once: the event completes first
    synchronize_event(e);
    return;
  }
  CUstream_st::Op wait;
  wait.wait_stream = e->stream;
  wait.wait_seq = e->seq;
  issue(stream, std::move(wait));
}

float event_elapsed_ms(cudaEvent_t start, cudaEvent_t end) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  return std::chrono::duration<float, std::milli>(end->t - start->t).count();
}

void synchronize_stream(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  if (is_legacy(s)) drain_all(/*blocking_only=*/true);
  else wait_for({{s->id, s->issued}});
}

void synchronize_event(cudaEvent_t e) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  if (e->stream != 0) wait_for({{e->stream, e->seq}});
}

void synchronize_blocking_streams() {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  drain_all(/*blocking_only=*/true);
}

void synchronize_device() {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  drain_all(/*blocking_only=*/false);
}

bool query_stream(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  if (is_legacy(s)) {
    std::map<int, uint64_t> need;
    for (auto& [id, st] : g_streams)
      if (st->blocking) need[id] = st->issued;
    bool done = true;
    for (const auto& [id, seq] : need) done = done && query(id, seq);
    return done;
  }
  return query(s->id, s->issued);
}

bool query_event(cudaEvent_t e) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  return e->stream == 0 || query(e->stream, e->seq);
}

unsigned long long host_waits() {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  return g_host_waits;
}

}  // namespace emu
