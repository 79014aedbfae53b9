// The MPI communicator's collectives, run under `mpirun -np 2` by ctest (test "mpi_collectives"); with one
// process they run on the single-process communicator and check the identity cases.
#include "backend/backend.h"
#include "dist/comm.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <cstring>

using namespace sp;

namespace {

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t(u >> 16);  // exact for the small integers used here
}
float from_bf16(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

TEST_CASE("collectives: all-reduce, reduce, all-gather, broadcast in fp32, fp64 and bf16", "[mpi]") {
  Communicator* comm = &test::job_communicator();
  const int W = comm->size(), r = comm->rank();
  INFO("rank " << r << " of " << W);

  std::vector<float> f = {float(r + 1), float(10 * (r + 1))};
  comm->all_reduce(Buffer{f.data(), f.size(), DType::F32}, ReduceOp::Sum);
  const float tri = float(W * (W + 1) / 2);  // 1 + 2 + ... + W
  CHECK(f == std::vector<float>{tri, 10 * tri});

  std::vector<double> d = {double(r + 1)};
  comm->all_reduce(Buffer{d.data(), 1, DType::F64}, ReduceOp::Avg);
  CHECK(d[0] == Approx(tri / W));

  std::vector<uint16_t> b = {to_bf16(float(r + 1)), to_bf16(-2.0f)};
  comm->all_reduce(Buffer{b.data(), b.size(), DType::BF16}, ReduceOp::Sum);
  CHECK(from_bf16(b[0]) == tri);
  CHECK(from_bf16(b[1]) == -2.0f * W);
  std::vector<uint16_t> bm = {to_bf16(float(r))};
  comm->all_reduce(Buffer{bm.data(), 1, DType::BF16}, ReduceOp::Max);
  CHECK(from_bf16(bm[0]) == float(W - 1));

  // reduce: every rank's send summed (averaged) into the root's recv, each rank the root once; the others'
  // recv untouched, and in place at the root
  for (int root = 0; root < W; ++root) {
    std::vector<float> send = {float(r), float(root)}, recv = {-1.0f, -1.0f};
    comm->reduce(Buffer{send.data(), 2, DType::F32}, Buffer{recv.data(), 2, DType::F32}, root, ReduceOp::Sum);
    if (r == root) CHECK(recv == std::vector<float>{float(W * (W - 1) / 2), float(W * root)});
    else CHECK(recv == std::vector<float>{-1.0f, -1.0f});
    std::vector<double> avg = {double(r + 1)};
    comm->reduce(Buffer{avg.data(), 1, DType::F64}, Buffer{avg.data(), 1, DType::F64}, root, ReduceOp::Avg);
    if (r == root) CHECK(avg[0] == Approx(tri / W));
  }

  // all-gather in place: rank k's block at offset k
  std::vector<float> g(size_t(3 * W), -1.0f);
  for (int i = 0; i < 3; ++i) g[size_t(3 * r + i)] = float(100 * r + i);
  comm->all_gather(Buffer{g.data(), g.size(), DType::F32});
  for (int k = 0; k < W; ++k)
    for (int i = 0; i < 3; ++i) CHECK(g[size_t(3 * k + i)] == float(100 * k + i));

  std::vector<float> x = {r == 0 ? 42.0f : 0.0f};
  comm->broadcast(Buffer{x.data(), 1, DType::F32}, 0);
  CHECK(x[0] == 42.0f);

  std::vector<double> h = {double(r), 1.0};
  comm->all_reduce_host(h, ReduceOp::Max);
  CHECK(h[0] == double(W - 1));
  auto names = comm->all_gather_string("rank-" + std::string(size_t(r + 1), 'x'));
  REQUIRE(names.size() == size_t(W));
  for (int k = 0; k < W; ++k) CHECK(names[size_t(k)] == "rank-" + std::string(size_t(k + 1), 'x'));
  comm->barrier();
}
