// Streams and events of the harness (docs/cuda_harness.md, "Streams").
//
// Every stream the program creates is a queue: kernel launches, async copies and sets, cuBLAS calls and
// NCCL collectives issued on it are recorded and run later, when the host must see their effect (a
// synchronising call). A drain runs the work the synchronising call depends on: the stream's queue, plus,
// through cudaStreamWaitEvent, the other streams' work up to the recorded events, transitively; and, as a
// GPU would, maybe other work that is ready (not collectives). At each pick it chooses among the streams
// whose next operation may run at random (drawn from the schedule seed), so the order of two streams is any
// order their events allow, and a missing cudaStreamWaitEvent changes results instead of hiding behind
// issue order. Work on the legacy default stream (0) runs at once, after the
// blocking streams' work, as CUDA's legacy stream semantics order it.
#pragma once

#include <cuda_runtime.h>

#include <functional>

namespace emu {

using StreamWork = std::function<void()>;

// Queues `work` on `stream`; on the legacy stream, runs the blocking streams' work and then `work` now.
// A collective (an NCCL call: every rank must reach it) runs only when a synchronising call needs it;
// other work may also run earlier, during any drain, once what it follows has run.
void enqueue(cudaStream_t stream, StreamWork work, bool collective = false);

void stream_create(cudaStream_t* s, bool blocking);
void stream_destroy(cudaStream_t s);  // runs its queue first, as CUDA completes it
void event_create(cudaEvent_t* e);
void event_destroy(cudaEvent_t e);
void event_record(cudaEvent_t e, cudaStream_t s);
void stream_wait_event(cudaStream_t s, cudaEvent_t e);  // waits for the event's latest record, as of now
float event_elapsed_ms(cudaEvent_t start, cudaEvent_t end);

// The host waits: what the stream (event) depends on runs, then the stream's queue (up to the record).
void synchronize_stream(cudaStream_t s);
void synchronize_event(cudaEvent_t e);
void synchronize_blocking_streams();  // what a call on the legacy stream waits for
void synchronize_device();            // every stream

// Queries never wait. A stream (event) whose work has all run is done; otherwise the answer is drawn from
// the schedule seed: either the work happened to finish (it runs now, as synchronize_* would run it) or it
// is not done yet, so code that polls, or reuses a buffer only once its event is done, sees both answers.
bool query_stream(cudaStream_t s);
bool query_event(cudaEvent_t e);

// How many times the host has waited for work that had not run yet: the synchronising calls above (and
// the runtime calls made of them) that had something to run. Queries are not waits. Tests read it to show
// that a training step waits for the device only where it means to.
unsigned long long host_waits();

}  // namespace emu
