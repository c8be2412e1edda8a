// sring-subscribe: receive blocks from sring-publish over ZeroMQ, verify
// every value in the block's own layout (format and channels come with each
// block's header, the pattern seed with its prefix), and apply the
// end-of-stream rule with the publisher's final counters (docs/streaming.md).
//
//   sring-subscribe --connect tcp://host:5555 --pattern push   a worker: its share of the stream
//   sring-subscribe --connect tcp://host:5555 --pattern pub    a monitor: counts what it missed
//
// Prints one "subscribe:" line of figures. Exit status: 0 the end arrived,
// no sample corrupted, and (a monitor) every sample received or counted as
// lost exactly; 1 corrupted or an accounting mismatch; 2 errors, among
// them silence for --timeout (a dead publisher or a cut link).
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "tools/cli.hpp"
#include "tools/version.hpp"
#include "ringlib/error_format.hpp"
#include "sring/net.hpp"
#include "sring/verify.hpp"

namespace {

using namespace sring;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] =
    "usage: sring-subscribe --connect ENDPOINT [options]\n"
    "  --pattern push|pub     PULL a share (default) or SUB to everything\n"
    "  --timeout SECONDS      give up after this long without a message (default 30)\n"
    "  --hwm MESSAGES         receive high-water mark (default 1000)\n"
    "  --slow-us N            sleep N microseconds per block (a slow worker)\n"
    "  --no-verify            do not check samples\n"
    "  --version              print the version and ABI version\n"
    "Blocks of any format and channel count are verified value by value; \"samples\" in the\n"
    "figures count frames (one sample of each channel), \"values\" what was compared.\n";

void print_figures(const NetSubscriber& subscriber, uint64_t values, uint64_t corrupted,
                   const std::optional<SampleLayout>& layout) {
  const StreamCounters& c = subscriber.accounting().counters();
  fmt::print("subscribe: blocks={} samples={} values={} corrupted={} out_of_order={} format={} channels={}",
             c.blocks, c.samples, values, corrupted, c.out_of_order,
             layout ? format_name(layout->format) : std::string("none"), layout ? layout->channels : 0);
  if (auto accounting = subscriber.finish()) {
    const NetEnd& e = *subscriber.end();
    fmt::print(" missing_blocks={} missing_samples={} produced_blocks={} produced_samples={} dropped_blocks={} "
               "dropped_samples={} unsent_blocks={} unsent_samples={} transit_lost_blocks={} "
               "transit_lost_samples={}",
               accounting->end.missing_blocks, accounting->end.missing_samples, e.blocks_produced,
               e.samples_produced, e.blocks_dropped, e.samples_dropped, e.blocks_unsent, e.samples_unsent,
               accounting->lost_in_transit_blocks, accounting->lost_in_transit_samples);
  }
  fmt::print("\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint;
  NetPattern pattern = NetPattern::kPushPull;
  double timeout_s = 30;
  NetSubscriberOptions net_options;
  uint64_t slow_us = 0;
  bool verify = true;
  cli::Args args(argc, argv);
  auto usage = [&](const std::string& message) {
    fmt::print(stderr, "sring-subscribe: {}\n{}", message, kUsage);
    return 2;
  };
  if (cli::answered_help_or_version(argc, argv, "sring-subscribe", kUsage)) return 0;
  while (!args.done()) {
    const std::string_view option = args.take();
    if (option == "--no-verify") { verify = false; continue; }
    auto value = args.value(option);
    if (!value) return usage(value.error().message);
    if (option == "--connect") {
      endpoint = std::string(*value);
    } else if (option == "--pattern") {
      auto v = parse_net_pattern(*value);
      if (!v) return usage(v.error().message);
      pattern = *v;
    } else if (option == "--timeout") {
      auto v = cli::parse_seconds(*value, option);
      if (!v) return usage(v.error().message);
      timeout_s = *v;
    } else if (option == "--hwm") {
      auto v = cli::parse_count(*value, option);
      if (!v || *v == 0 || *v > 1'000'000) return usage("--hwm takes 1 to 1M");
      net_options.receive_hwm = static_cast<int>(*v);
    } else if (option == "--slow-us") {
      auto v = cli::parse_count(*value, option);
      if (!v) return usage(v.error().message);
      slow_us = *v;
    } else {
      return usage(fmt::format("unknown option {}", option));
    }
  }
  if (endpoint.empty()) return usage("say where from: --connect ENDPOINT (tcp://host:5555)");

  zmq::context_t context;
  auto connected = NetSubscriber::connect(context, pattern, endpoint, net_options);
  if (!connected) {
    fmt::print(stderr, "sring-subscribe: {}\n", connected.error().message);
    return 2;
  }
  NetSubscriber& subscriber = **connected;
  uint64_t values = 0;
  uint64_t corrupted = 0;
  std::optional<SampleLayout> layout;  // of the first block; every other must be the same
  auto last_message = Clock::now();
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1e3));
  for (;;) {
    auto got = subscriber.receive(std::chrono::milliseconds(100));
    if (!got) {
      fmt::print(stderr, "sring-subscribe: from {}: {}\n", endpoint, got.error().message);
      print_figures(subscriber, values, corrupted, layout);
      return 2;
    }
    if (*got == NetSubscriber::Got::kEnd) break;
    if (*got == NetSubscriber::Got::kNothing) {
      if (Clock::now() - last_message > timeout) {
        fmt::print(stderr,
                   "sring-subscribe: nothing from {} for {} s: the publisher is gone or the link is down; "
                   "no end of stream, so what is below is not final\n",
                   endpoint, timeout_s);
        print_figures(subscriber, values, corrupted, layout);
        return 2;
      }
      continue;
    }
    last_message = Clock::now();
    const NetBlock& block = subscriber.block();
    if (!layout) layout = block.layout;
    if (block.layout != *layout) {
      fmt::print(stderr, "sring-subscribe: from {}: block {} is {}, the stream began as {}\n", endpoint,
                 block.header.sequence, describe(block.layout), describe(*layout));
      print_figures(subscriber, values, corrupted, layout);
      return 2;
    }
    if (verify) {
      values += block.frames() * block.layout.channels * block.layout.components();
      corrupted += count_pattern_mismatches(block.payload.data(), block.layout, block.header.first_sample,
                                            block.frames(), block.pattern_seed);
    }
    if (slow_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(slow_us));
  }
  print_figures(subscriber, values, corrupted, layout);
  const auto accounting = subscriber.finish();
  const StreamCounters& c = subscriber.accounting().counters();
  if (corrupted || c.out_of_order) {
    fmt::print("subscribe: FAIL: {} corrupted values, {} blocks out of order\n", corrupted, c.out_of_order);
    return 1;
  }
  if (pattern == NetPattern::kPushPull) {
    // A worker sees its share: the totals add up over all workers
    // (docs/streaming.md), not here.
    fmt::print("subscribe: OK: share of {} samples, each {}\n", c.samples, verify ? "verified" : "received");
    return 0;
  }
  // A monitor: received + missing must be the whole stream, and what is
  // missing at least what never left the publisher.
  const NetEnd& e = *subscriber.end();
  if (c.samples + accounting->end.missing_samples != e.samples_produced ||
      accounting->end.missing_samples < accounting->end.dropped_samples) {
    fmt::print("subscribe: FAIL: accounting mismatch: received {} + missing {} vs produced {}, never sent {}\n",
               c.samples, accounting->end.missing_samples, e.samples_produced, accounting->end.dropped_samples);
    return 1;
  }
  fmt::print("subscribe: OK: every sample {} or counted lost ({} at the ring or unsent, {} in transit)\n",
             verify ? "verified" : "received", accounting->end.dropped_samples, accounting->lost_in_transit_samples);
  return 0;
}
