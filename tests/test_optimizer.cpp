// The optimizer's master weights (docs/architecture.md, "Precision"): on the CPU they are the parameter
// buffer itself, updated in place; set_master_weights and get_master_weights round-trip exactly; the init
// through them equals Model::init_weights; the gradient norm is summed on the device. Under ZeRO-1 (the
// [mpi] case, run on 2 ranks by the ctest "mpi_collectives") each rank's master is its slice of the
// parameters and a sharded step equals an unsharded one bit for bit.
#include "backend/backend.h"
#include "core/rng.h"
#include "dist/comm.h"
#include "model/model.h"
#include "test_util.h"
#include "train/optimizer.h"

#include <catch2/catch.hpp>

#include <cmath>

using namespace sp;

namespace {

ModelConfig model_config() { return test::tiny_model_config({}); }

// Arbitrary fp32 values: almost none of them survives a round trip through bf16 or any other rounding.
std::vector<float> random_values(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.normal());
  return v;
}

std::vector<float> host(Backend& be, Buffer b) {
  std::vector<float> v(b.numel);
  be.download(std::span<float>(v), b);
  return v;
}

}  // namespace

TEST_CASE("AdamW updates the parameters in place when the master and weight dtypes agree", "[unit]") {
  auto be = make_backend({"cpu", 2});
  Model model(model_config(), *be);
  AdamW opt(OptimizerConfig{}, model);
  CHECK(opt.master().ptr == model.params().ptr);  // no second copy of the weights
  CHECK(opt.master().numel == model.num_params());
  opt.set_master_weights(model.initial_weights(7));
  const std::vector<float> before = host(*be, model.params());
  const std::vector<float> g = random_values(model.num_params(), 3);
  be->upload(model.grads(), std::span<const float>(g));
  double sq = 0;
  for (float x : g) sq += double(x) * double(x);
  opt.reduce_gradients();  // one rank: only the norm's sum of squares
  const double norm = opt.grad_norm();
  CHECK(norm == Approx(std::sqrt(sq)).epsilon(1e-12));
  opt.reduce_gradients();
  CHECK(opt.grad_norm() == norm);  // summed on the device from zero each time
  opt.step(1e-2, 1, 1.0);
  std::vector<float> master;
  opt.get_master_weights(master);
  CHECK(master != before);
  CHECK(master == host(*be, model.params()));
}

TEST_CASE("set_master_weights round-trips exactly, and the init through it equals init_weights", "[unit]") {
  for (const char* device : {"cpu", "cpu-f64"}) {
    INFO(device);
    auto be = make_backend({device, 2});
    Model model(model_config(), *be);
    AdamW opt(OptimizerConfig{}, model);
    const std::vector<float> w = random_values(model.num_params(), 11);
    opt.set_master_weights(w);
    std::vector<float> back;
    opt.get_master_weights(back);
    CHECK(back == w);
    CHECK(host(*be, model.params()) == w);  // the working copy
  }
  auto be = make_backend({"cpu", 2});
  Model direct(model_config(), *be), through(model_config(), *be);
  direct.init_weights(5);
  AdamW opt(OptimizerConfig{}, through);
  opt.set_master_weights(through.initial_weights(5));
  CHECK(host(*be, direct.params()) == host(*be, through.params()));
}

TEST_CASE("ZeRO-1: each rank's master is its slice of the parameters; a sharded step equals an unsharded one",
          "[mpi]") {
  Communicator* comm = &test::job_communicator();
  const int W = comm->size(), r = comm->rank();
  INFO("rank " << r << " of " << W);
  auto be = make_backend({"cpu", 1});
  const size_t pad = size_t(W) * kParamAlign;
  Model sharded_model(model_config(), *be, pad), plain_model(model_config(), *be, pad);
  AdamW sharded(OptimizerConfig{}, sharded_model, *comm, /*zero_stage=*/1);
  AdamW plain(OptimizerConfig{}, plain_model, *comm, /*zero_stage=*/0);
  const size_t P = sharded_model.num_params(), S = P / size_t(W);
  CHECK(sharded.sharded() == (W > 1));
  CHECK(sharded.master().ptr == sharded_model.params().slice(size_t(r) * S, S).ptr);
  CHECK(sharded.master().numel == S);

  const std::vector<float> w = random_values(P, 21), g = random_values(P, 22);  // the same on every rank
  for (auto [model, opt] : {std::pair{&sharded_model, &sharded}, std::pair{&plain_model, &plain}}) {
    opt->set_master_weights(w);
    be->upload(model->grads(), std::span<const float>(g));
    opt->reduce_gradients();
    opt->step(1e-2, 1, 1.0);
  }
  std::vector<float> a, b, am, av, bm, bv;
  sharded.get_master_weights(a);
  plain.get_master_weights(b);
  CHECK(a == b);
  CHECK(host(*be, sharded_model.params()) == a);  // the all-gathered working copy
  sharded.get_moments(am, av);
  plain.get_moments(bm, bv);
  CHECK(am == bm);
  CHECK(av == bv);
}
