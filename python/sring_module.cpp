// The Python binding: `import sring`. A Ring is one consumer of a device
// (/dev/sringN), of a ring handed over by an sring-sim process, or of an
// in-process simulated device; its blocks come out as read-only numpy
// arrays that are views of the ring itself (zero-copy), shaped by the
// block's sample format and channels (array_shape(), below).
//
// The one rule numpy needs: memory a view points at must not be given back
// to the producer while the view lives. Each Block object is the base of
// every array made from it (and numpy keeps a view of a view based on the
// same object), so the Block lives exactly as long as it or any view of it:
// it pins its position in the Session when made and unpins it in its
// destructor. Blocks count as delivered when handed out; the ring is
// released up to the oldest pinned block (Consumer::hold_from), so a view
// never sees its memory rewritten. (Raw addresses taken out of a view,
// .ctypes.data or __array_interface__, are not views and pin nothing.) A loop
// that keeps views forever fills the ring, and the producer's overrun
// policy applies and is counted, like any slow consumer (with a warning).
// Under overwrite-oldest the producer takes memory back regardless, so
// there a block's samples are a copy, checked after it was made.
//
// Waits release the GIL and wake every 50 ms to let Python run its signal
// handlers, so Ctrl-C ends a loop with KeyboardInterrupt and `with` stops
// the device.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <sys/eventfd.h>

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tools/cli.hpp"
#include "sring/consumer.hpp"
#include "sring/device.hpp"
#include "sring/net.hpp"
#include "sring/ring.hpp"
#include "sring/sim/fd_passing.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"
#include "sring/sring_pattern.h"

namespace py = pybind11;

namespace {

using namespace std::chrono_literals;

// Errors keep their errno: OSError(errno, message), so Python code can test
// e.errno == errno.EBUSY.
[[noreturn]] void raise(const sring::Error& error) {
  py::object os_error = py::module_::import("builtins").attr("OSError");
  PyErr_SetObject(os_error.ptr(), py::make_tuple(error.code, error.message).ptr());
  throw py::error_already_set();
}

template <typename T>
T checked(sring::Expected<T> result) {
  if (!result) raise(result.error());
  return std::move(*result);
}

void check(const sring::Status& status) {
  if (!status) raise(status.error());
}

// Everything native behind one Ring object. Blocks hold it too, so the
// mapping outlives the last view of it even if the Ring object goes first.
struct Session {
  // Declaration order is destruction order reversed: the consumer goes
  // before its ring, the simulated device before the memory it writes.
  std::optional<sring::Device> device;
  std::optional<sring::sim::HostRing> host;
  sring::sim::SimConfig sim_config;
  std::unique_ptr<sring::sim::SimDevice> sim;
  sring::UniqueFd sim_eventfd;  // the simulated device's copy is its own
  // An sring-sim process: start() asks it to start; it keeps the ring until
  // this socket closes.
  sring::UniqueFd sim_socket;
  bool sim_ran = false;
  std::mutex stop_mutex;  // serialises joins of the simulated producer
  bool started = false;  // by this Ring: close() stops it
  std::optional<sring::Ring> ring;
  std::optional<sring::Consumer> consumer;
  sring::WaitStrategy strategy = sring::WaitStrategy::kEventfd;
  bool closed = false;
  bool in_wait = false;  // the GIL is released inside a wait on this ring
  bool warned = false;

  // Ring position -> bytes of every Block object alive (each pins its
  // memory until its destructor: see PyBlock). Holds no Python objects, so
  // no reference cycle with the Blocks, which hold the Session.
  std::map<uint64_t, uint32_t> pinned;
  // Rings replaced by reset(): ring.data views of them may still exist, so
  // their mappings stay until the Session goes.
  std::vector<sring::Ring> retired;

  ~Session() {
    if (sim) {
      sim->request_stop();
      py::gil_scoped_release no_gil;  // the producer thread takes no GIL, but do not hold it
      std::lock_guard<std::mutex> lock(stop_mutex);
      sim->join();
    }
  }

  // Counters, state and configuration stay readable after close().
  void readable() const {
    if (in_wait) throw std::runtime_error("the ring is being waited on by another thread: a Ring belongs to one thread");
  }
  void usable() const {
    if (closed) throw py::value_error("the ring is closed");
    readable();
  }
  bool overwrite() const {
    return sring::load_relaxed(ring->producer().overrun_policy) == SRING_OVERRUN_OVERWRITE_OLDEST;
  }
  // From sample 0 if the producer has made nothing yet (Consumer()).
  void new_consumer() { consumer.emplace(*ring); }
  // Release nothing at or past the oldest pinned block.
  void hold() {
    if (pinned.empty()) {
      consumer->hold_from(std::nullopt);
    } else {
      consumer->hold_from(pinned.begin()->first);  // positions do not wrap in 64 bits
    }
  }
  // Before handing out more: the hold, and a warning once if views pin
  // more than half the ring.
  void settle() {
    hold();
    uint64_t held_bytes = 0;
    for (const auto& [position, bytes] : pinned) held_bytes += bytes;
    if (!warned && held_bytes > ring->ring_size() / 2) {
      warned = true;
      const std::string message =
          "sring: numpy views of " + std::to_string(pinned.size()) +
          " blocks are still alive, so their ring space cannot be given back and the producer will "
          "soon drop or stop (counted as loss); keep block.samples.copy() of data you keep";
      if (PyErr_WarnEx(PyExc_RuntimeWarning, message.c_str(), 1) != 0) throw py::error_already_set();
    }
  }
};

// How a block's samples look in numpy, by their layout (docs/abi.md,
// "Sample formats"): one row per frame, one column per channel.
//   u8 s8 u16 s16 s32 f32   uint8 .. float32   (frames, channels)
//   cf32                    complex64          (frames, channels)
//   cs16                    int16              (frames, channels, 2): I, Q
//   a device's own format   uint8              (payload_bytes,): its bytes
// numpy has no complex int16. Plain int16 with I and Q on the last axis
// keeps integer arithmetic exact and converts in one step,
// x.astype(np.float32).view(np.complex64)[..., 0]; a structured dtype
// {i, q} would do neither.
struct ArrayShape {
  py::dtype dtype;
  std::vector<py::ssize_t> shape;
  std::vector<py::ssize_t> strides;  // C order: the payload is contiguous
};

ArrayShape array_shape(const sring::SampleLayout& layout, uint64_t frames) {
  auto rows = [&](py::dtype dtype, std::vector<py::ssize_t> inner) {
    std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(frames), static_cast<py::ssize_t>(layout.channels)};
    shape.insert(shape.end(), inner.begin(), inner.end());
    std::vector<py::ssize_t> strides(shape.size());
    py::ssize_t stride = dtype.itemsize();
    for (size_t axis = shape.size(); axis-- > 0;) {
      strides[axis] = stride;
      stride *= shape[axis];
    }
    return ArrayShape{std::move(dtype), std::move(shape), std::move(strides)};
  };
  switch (layout.format) {
    case SRING_FMT_U8: return rows(py::dtype::of<uint8_t>(), {});
    case SRING_FMT_S8: return rows(py::dtype::of<int8_t>(), {});
    case SRING_FMT_U16: return rows(py::dtype::of<uint16_t>(), {});
    case SRING_FMT_S16: return rows(py::dtype::of<int16_t>(), {});
    case SRING_FMT_S32: return rows(py::dtype::of<int32_t>(), {});
    case SRING_FMT_F32: return rows(py::dtype::of<float>(), {});
    case SRING_FMT_CF32: return rows(py::dtype("complex64"), {});
    case SRING_FMT_CS16: return rows(py::dtype::of<int16_t>(), {2});
    default:
      return ArrayShape{py::dtype::of<uint8_t>(), {static_cast<py::ssize_t>(layout.payload_bytes(frames))}, {1}};
  }
}

py::array read_only(py::array array) {
  array.attr("flags").attr("writeable") = false;
  return array;
}

// A read-only copy of a payload, shaped as its view would be: for
// overwrite-oldest (checked after the copy) and for blocks received over the
// network (libzmq reuses the message).
py::array copied(const sring::SampleLayout& layout, uint64_t frames, const void* payload) {
  ArrayShape shape = array_shape(layout, frames);
  py::array copy(shape.dtype, shape.shape, shape.strides);
  if (static_cast<uint64_t>(copy.nbytes()) != layout.payload_bytes(frames)) {
    throw std::logic_error("sring: an array of " + std::to_string(copy.nbytes()) + " bytes for a payload of " +
                           std::to_string(layout.payload_bytes(frames)));
  }
  std::memcpy(copy.mutable_data(), payload, layout.payload_bytes(frames));
  return read_only(std::move(copy));
}

struct PyBlock {
  PyBlock() = default;
  PyBlock(const PyBlock&) = delete;
  PyBlock& operator=(const PyBlock&) = delete;
  // The last view of the block is gone (it was the views' base): its ring
  // space may be given back. Runs with the GIL held, like every access to
  // the Session's Python-side state.
  ~PyBlock() {
    if (pinned && session) session->pinned.erase(position);
  }

  std::shared_ptr<Session> session;
  bool pinned = false;
  sring_block_header header;
  sring::SampleLayout layout;
  const std::byte* payload = nullptr;  // in the ring; null when copied
  uint64_t position = 0;
  uint64_t lost_before = 0;
  std::optional<py::array> copy;  // overwrite-oldest, network: a copy shaped as the view

  uint64_t frames() const { return header.sample_count; }
  uint64_t payload_bytes() const { return layout.payload_bytes(frames()); }
};

// The samples of a Block object, shaped by its layout: a view of the ring
// based on the Block (the ring space stays unreleased while the view, or
// any view of it, lives), or its copy.
py::array samples_of(py::object self) {
  auto& b = self.cast<PyBlock&>();
  if (b.copy) return *b.copy;
  ArrayShape shape = array_shape(b.layout, b.frames());
  return read_only(py::array(shape.dtype, shape.shape, shape.strides, b.payload, self));
}

// What Block.array(dtype) throws when dtype is not the samples' own.
class FormatMismatch : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// One step of iteration: the next block, waiting up to `timeout` (none:
// until the end of the stream). nullopt: the stream ended, or the timeout.
// Seconds from Python to a deadline: None, inf or beyond a thousand years
// is no deadline; NaN or negative is an error.
std::chrono::steady_clock::time_point deadline_after(std::optional<double> seconds, const char* what) {
  if (!seconds || (std::isinf(*seconds) && *seconds > 0) || *seconds > 3e10) {
    return std::chrono::steady_clock::time_point::max();
  }
  if (!(*seconds >= 0)) throw py::value_error(std::string(what) + ": seconds >= 0, or None for no limit");
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(*seconds));
}

// in_wait for the length of a wait, whatever ends it.
struct WaitingFlag {
  explicit WaitingFlag(Session& s) : session(s) { session.in_wait = true; }
  ~WaitingFlag() { session.in_wait = false; }
  Session& session;
};

std::optional<py::object> next_block(const std::shared_ptr<Session>& s, std::optional<double> timeout) {
  s->usable();
  const auto deadline = deadline_after(timeout, "timeout");
  for (;;) {
    s->settle();
    auto next = checked(s->consumer->next());
    if (next) {
      const sring::Block& block = *next;
      auto owner = std::make_unique<PyBlock>();
      owner->session = s;
      owner->header = block.header();
      owner->position = block.position();
      owner->lost_before = block.lost_before();
      owner->layout = block.layout();
      if (s->overwrite()) {
        // The producer may take this memory back at any time: copy, then
        // release, and keep the copy only if the release says it was intact.
        py::array copy = copied(block.layout(), block.frames(), block.payload().data());
        if (checked(s->consumer->done(1)) == 0) continue;  // taken back while copied: not given
        owner->copy = std::move(copy);
        return py::cast(std::move(owner));
      }
      owner->payload = block.payload().data();
      // Pinned and held before done(1), which may release: the block's own
      // memory must not go in the release that counts it.
      s->pinned.emplace(block.position(), block.header().total_bytes);
      owner->pinned = true;
      s->hold();
      checked(s->consumer->done(1));  // counts now; released once no view is left
      return py::cast(std::move(owner));
    }
    if (s->consumer->end_of_stream()) return std::nullopt;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return std::nullopt;
    // Settle before sleeping: views dropped since are released by the wait.
    s->settle();
    const auto slice = std::min<std::chrono::nanoseconds>(50ms, deadline - now);
    sring::Expected<bool> waited = false;
    {
      WaitingFlag waiting(*s);
      py::gil_scoped_release no_gil;
      waited = s->consumer->wait(s->strategy, slice);
    }
    if (!waited) raise(waited.error());
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C: KeyboardInterrupt
  }
}

struct Blocks {
  std::shared_ptr<Session> session;
  std::optional<double> timeout;
};

struct PyRing {
  std::shared_ptr<Session> session = std::make_shared<Session>();


  Session& s() const {
    session->usable();
    return *session;
  }
  Session& readable() const {
    session->readable();
    return *session;
  }
};

uint32_t policy_from(const py::handle& value) {
  if (py::isinstance<py::int_>(value)) return value.cast<uint32_t>();
  auto policy = sring::cli::parse_overrun_policy(value.cast<std::string>());
  if (!policy) throw py::value_error("overrun_policy: " + policy.error().message);
  return *policy;
}

// A format by name ("u8" ... "cf32", "sim-packed12") or number (a device's
// own, which its driver documents).
uint32_t format_from(const py::handle& value) {
  if (py::isinstance<py::int_>(value)) return value.cast<uint32_t>();
  const auto name = value.cast<std::string>();
  const auto format = sring::parse_format(name);
  if (!format) {
    throw py::value_error("sample_format: u8, s8, u16, s16, s32, f32, cs16, cf32, sim-packed12 or a device's "
                          "own format number, not '" + name + "'");
  }
  return *format;
}

// Bits of one sample of one channel where they are known from the format
// alone: the standard formats and the simulated devices' 12-bit packed one;
// 0 for another device's own (its driver declares them on the ring).
uint32_t known_bits(uint32_t format) { return sring_pattern_format_bits(format); }

// Keyword arguments onto a configuration; unknown names are an error.
void apply(sring_config& c, const py::kwargs& kwargs) {
  if (kwargs.contains("block_bytes") && kwargs.contains("block_samples")) {
    throw py::value_error("block_bytes or block_samples, not both");
  }
  std::optional<uint64_t> block_frames;
  for (const auto& [key, value] : kwargs) {
    const auto name = key.cast<std::string>();
    if (name == "sample_rate") {
      const double rate = value.cast<double>();
      if (!std::isfinite(rate) || rate < 0 || rate > double(SRING_MAX_SAMPLE_RATE)) {
        throw py::value_error("sample_rate: 0 (flat out) to " + std::to_string(SRING_MAX_SAMPLE_RATE) +
                              " frames/s, not " + py::str(value).cast<std::string>());
      }
      c.sample_rate = static_cast<uint64_t>(std::llround(rate));
    } else if (name == "block_bytes") {
      c.block_bytes = value.cast<uint32_t>();
    } else if (name == "block_samples") {
      block_frames = value.cast<uint64_t>();  // once format and channels are known
    } else if (name == "overrun_policy") {
      c.overrun_policy = policy_from(value);
    } else if (name == "sample_format") {
      c.sample_format = format_from(value);
    } else if (name == "channels") {
      const int64_t channels = value.cast<int64_t>();
      if (channels < 1 || channels > SRING_MAX_CHANNELS) {
        throw py::value_error("channels: 1 to " + std::to_string(SRING_MAX_CHANNELS) + ", not " +
                              std::to_string(channels));
      }
      c.channels = static_cast<uint32_t>(channels);
    } else if (name == "pattern_seed") {
      c.pattern_seed = value.cast<uint32_t>();
    } else if (name == "flush_timeout_us") {
      c.flush_timeout_us = value.cast<uint32_t>();
    } else {
      throw py::type_error("configure(): unknown setting '" + name +
                           "' (sample_rate, block_bytes, block_samples, overrun_policy, sample_format, channels, "
                           "pattern_seed, flush_timeout_us)");
    }
  }
  if (block_frames) {
    // Frames, whatever order the settings came in: header plus the
    // payload of that many frames, rounded up to the 64-byte multiple
    // blocks are.
    const uint32_t bits = known_bits(c.sample_format);
    if (bits == 0) {
      throw py::value_error("block_samples: the size of format " + sring::format_name(c.sample_format) +
                            " is its driver's; give block_bytes");
    }
    // Frames beyond a largest block's bits are refused before the product
    // that sizes them could wrap.
    const uint64_t bytes = *block_frames > uint64_t{SRING_MAX_BLOCK_BYTES} * 8
                               ? uint64_t{SRING_MAX_BLOCK_BYTES} + 1
                               : SRING_BLOCK_HEADER_SIZE +
                                     sring_payload_bytes(*block_frames, c.channels ? c.channels : 1, bits);
    if (bytes > SRING_MAX_BLOCK_BYTES) {
      throw py::value_error("block_samples: " + std::to_string(*block_frames) + " frames make blocks of more than " +
                            std::to_string(SRING_MAX_BLOCK_BYTES) + " bytes");
    }
    c.block_bytes = static_cast<uint32_t>((bytes + SRING_BLOCK_ALIGN - 1) / SRING_BLOCK_ALIGN * SRING_BLOCK_ALIGN);
  }
}

// A configuration as Ring.config() gives it; bits_per_sample 0: not known
// (another device's own format, not yet on the ring): None.
py::dict config_dict(const sring_config& c, uint32_t bits_per_sample) {
  const sring::SampleLayout layout{c.sample_format, c.channels ? c.channels : 1u, bits_per_sample};
  py::dict d;
  d["sample_rate"] = c.sample_rate;
  d["block_bytes"] = c.block_bytes;
  d["block_samples"] = bits_per_sample ? py::cast(layout.frames_per_block(c.block_bytes)) : py::none();
  d["overrun_policy"] = std::string(sring::cli::overrun_policy_name(c.overrun_policy));
  d["sample_format"] = sring::format_name(c.sample_format);
  d["channels"] = layout.channels;
  d["bits_per_sample"] = bits_per_sample ? py::cast(bits_per_sample) : py::none();
  d["pattern_seed"] = c.pattern_seed;
  d["flush_timeout_us"] = c.flush_timeout_us;
  return d;
}

std::shared_ptr<Session> attach_ring(const std::shared_ptr<Session>& s, sring::Ring ring) {
  s->ring.emplace(std::move(ring));
  s->new_consumer();
  return s;
}

PyRing open_device(const std::string& path, const std::string& wait) {
  PyRing r;
  auto& s = *r.session;
  auto strategy = sring::parse_wait_strategy(wait);
  if (!strategy) throw py::value_error("wait: eventfd, poll, spin or hybrid, not '" + wait + "'");
  s.strategy = *strategy;
  s.device.emplace(checked(sring::Device::open(path)));
  auto ring = checked(s.device->attach());
  check(ring.enable_eventfd());
  attach_ring(r.session, std::move(ring));
  return r;
}

PyRing connect_simulator(const std::string& socket_path, double timeout) {
  // sring-sim --socket PATH hands over the ring's memfd and the eventfd it
  // signals, and the data file of a ring in 2 MiB pages (one connection,
  // one consumer).
  PyRing r;
  if (!(timeout >= 0) || timeout > 86400) throw py::value_error("timeout: 0 to 86400 seconds");
  sring::Expected<sring::UniqueFd> connected = sring::UniqueFd();
  sring::Expected<sring::sim::RingHandover> received = sring::sim::RingHandover{};
  uint8_t payload = 0;
  {
    py::gil_scoped_release no_gil;  // connecting retries until the timeout
    connected = sring::sim::connect_unix(socket_path, std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000)));
    if (connected) received = sring::sim::receive_ring(connected->get(), &payload);
  }
  auto socket = checked(std::move(connected));
  auto handover = checked(std::move(received));
  auto ring = checked(sring::Ring::attach(std::move(handover.ring), std::move(handover.data),
                                          sring::Ring::Access::kConsumer));
  check(ring.use_eventfd(std::move(handover.eventfd)));
  attach_ring(r.session, std::move(ring));
  r.session->sim_socket = std::move(socket);
  return r;
}

// The simulated device's settings from a device configuration (what
// apply() edits).
sring::sim::SimConfig sim_config_from(const sring_config& c) {
  sring::sim::SimConfig config;
  config.sample_rate = c.sample_rate;
  config.block_bytes = c.block_bytes;
  config.overrun_policy = c.overrun_policy;
  config.sample_format = c.sample_format;
  config.channels = c.channels ? c.channels : 1;
  config.pattern_seed = c.pattern_seed;
  config.flush_timeout = std::chrono::microseconds(c.flush_timeout_us);
  return config;
}

PyRing simulate(uint64_t ring_size, const py::kwargs& kwargs) {
  PyRing r;
  auto& s = *r.session;
  sring_config c = sring::sim::to_device_config(sring::sim::SimConfig{});
  apply(c, kwargs);
  s.sim_config = sim_config_from(c);
  check(sring::sim::validate_config(s.sim_config, ring_size));
  s.host.emplace(checked(sring::sim::HostRing::create(ring_size)));
  auto ring = checked(sring::Ring::attach(checked(s.host->duplicate_fd()), sring::Ring::Access::kConsumer));
  s.sim_eventfd = sring::UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s.sim_eventfd.valid()) raise(sring::Error{errno, "cannot create an eventfd"});
  check(ring.use_eventfd(sring::UniqueFd(::dup(s.sim_eventfd.get()))));
  attach_ring(r.session, std::move(ring));
  return r;
}

py::dict counters_dict(const sring::Counters& c) {
  py::dict d;
  d["blocks"] = c.blocks;
  d["samples"] = c.samples;
  d["missing_blocks"] = c.missing_blocks;
  d["missing_samples"] = c.missing_samples;
  d["blocks_produced"] = c.blocks_produced;
  d["samples_produced"] = c.samples_produced;
  d["blocks_dropped"] = c.blocks_dropped;
  d["samples_dropped"] = c.samples_dropped;
  d["overwritten_while_read"] = c.overwritten_while_read;
  d["state"] = std::string(sring::state_name(c.state));
  d["end_of_stream"] = c.end_of_stream;
  d["exact"] = c.exact;
  return d;
}

void stop(Session& s) {
  // Any thread may stop a device: this touches only the device or the
  // simulated producer, never the consumer state. Two threads may stop at
  // once (a timer and close()): one joins the producer thread, under
  // stop_mutex, taken without the GIL so that neither waits on the other.
  if (s.sim) {
    s.sim->request_stop();
    py::gil_scoped_release no_gil;
    std::lock_guard<std::mutex> lock(s.stop_mutex);
    s.sim->join();
  } else if (s.device) {
    check(s.device->stop());
  }
}

void close(Session& s) {
  if (s.closed) return;
  if (s.in_wait) throw std::runtime_error("close() while another thread waits on this ring");
  // Stop what we may have started; the mapping itself stays until the last
  // view of it is gone (the Session is shared with every Block).
  if (s.sim) stop(s);
  if (s.device && s.started) (void)s.device->stop();  // gone or stopped already: nothing to report
  s.sim_socket = sring::UniqueFd();  // an sring-sim process may go now
  s.closed = true;
}

// The receiving end of sring-publish (<sring/net.hpp>): blocks over ZeroMQ,
// with the same loss accounting as a local ring. A Subscriber belongs to one
// thread, like a Ring.
struct PySubscriber {
  // Declared before the subscriber, so destroyed after it: a context is
  // terminated only once its sockets are closed (the socket's linger is 0).
  std::unique_ptr<zmq::context_t> context;
  std::unique_ptr<sring::NetSubscriber> subscriber;
  std::optional<double> timeout;  // seconds without a message; None: no limit
  bool ended = false;
  // At the end: the accounting, kept once the socket is closed (the
  // publisher waits for its peers to disconnect after the end of stream).
  struct Final {
    sring::StreamCounters counters;
    sring::NetEnd end;
    sring::NetAccounting accounting;
  };
  std::optional<Final> final;
  bool in_wait = false;  // the GIL is released inside receive() on this subscriber
  uint32_t pattern_seed = 0;

  void usable() const {
    if (in_wait) throw std::runtime_error("the subscriber is being waited on by another thread: it belongs to one thread");
  }
};

PySubscriber subscribe(const std::string& endpoint, const std::string& pattern, std::optional<double> timeout,
                       int hwm) {
  sring::NetPattern net_pattern;
  if (pattern == "pull") {
    net_pattern = sring::NetPattern::kPushPull;
  } else if (pattern == "sub") {
    net_pattern = sring::NetPattern::kPubSub;
  } else {
    throw py::value_error("pattern: 'pull' (from sring-publish --pattern push) or 'sub' (--pattern pub), not '" +
                          pattern + "'");
  }
  if (hwm < 1) throw py::value_error("hwm: at least 1 message");
  (void)deadline_after(timeout, "timeout");  // validates it now rather than at the first block
  PySubscriber s;
  s.context = std::make_unique<zmq::context_t>();
  s.subscriber = checked(sring::NetSubscriber::connect(*s.context, net_pattern, endpoint, {.receive_hwm = hwm}));
  s.timeout = timeout;
  return s;
}

// The next block, nullopt at the publisher's end of stream; TimeoutError
// after `timeout` seconds without a message (the accounting is then not
// final: the end never came).
std::optional<py::object> next_net_block(PySubscriber& s) {
  s.usable();
  if (s.ended) return std::nullopt;
  const auto deadline = deadline_after(s.timeout, "timeout");
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      PyErr_SetString(PyExc_TimeoutError, "sring.subscribe: no message within the timeout; no end of stream, so "
                                          "counters() are not final");
      throw py::error_already_set();
    }
    // Slices of at most 50 ms without the GIL, so that signal handlers run.
    const auto slice = std::chrono::ceil<std::chrono::milliseconds>(std::min<std::chrono::nanoseconds>(50ms, deadline - now));
    sring::Expected<sring::NetSubscriber::Got> got = sring::NetSubscriber::Got::kNothing;
    {
      s.in_wait = true;
      struct Clear {
        bool& flag;
        ~Clear() { flag = false; }
      } clear{s.in_wait};
      py::gil_scoped_release no_gil;
      got = s.subscriber->receive(slice);
    }
    if (!got) raise(got.error());
    if (*got == sring::NetSubscriber::Got::kEnd) {
      s.ended = true;
      s.pattern_seed = s.subscriber->end()->pattern_seed;
      s.final = PySubscriber::Final{s.subscriber->accounting().counters(), *s.subscriber->end(),
                                    *s.subscriber->finish()};
      // Disconnect now: the publisher waits for every peer to go once it
      // has the end (NetPublisher::send_end).
      s.subscriber.reset();
      s.context.reset();
      return std::nullopt;
    }
    if (*got == sring::NetSubscriber::Got::kBlock) {
      // The received message is reused by the next receive(): copy the
      // samples out, so a Block stays valid as long as Python keeps it.
      const sring::NetBlock& block = s.subscriber->block();
      auto owner = std::make_unique<PyBlock>();
      owner->header = block.header;
      owner->position = block.header.sequence;
      owner->lost_before = block.lost_before;
      owner->layout = block.layout;
      owner->copy = copied(block.layout, block.frames(), block.payload.data());
      s.pattern_seed = block.pattern_seed;
      return py::cast(std::move(owner));
    }
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C: KeyboardInterrupt
  }
}

// The keys of Ring.counters() that apply, from NetSubscriber::finish() once
// the end came (before: what was received so far, end_of_stream False).
// blocks_dropped / samples_dropped are what was lost before the network:
// dropped at the ring plus never sent (also given apart as *_unsent), so
// that exact means missing == dropped, as for a ring; what is missing beyond
// that was lost in transit (PUB/SUB).
py::dict net_counters(const PySubscriber& s) {
  s.usable();
  py::dict d;
  if (!s.final) {
    // What came so far; the producer's side is unknown until the end.
    const sring::StreamCounters& c = s.subscriber->accounting().counters();
    d["blocks"] = c.blocks;
    d["samples"] = c.samples;
    d["missing_blocks"] = c.lost_blocks;
    d["missing_samples"] = c.lost_samples;
    for (const char* key : {"blocks_produced", "samples_produced", "blocks_dropped", "samples_dropped",
                            "blocks_unsent", "samples_unsent", "lost_in_transit_blocks", "lost_in_transit_samples"}) {
      d[key] = 0;
    }
    d["end_of_stream"] = false;
    d["exact"] = false;
    return d;
  }
  const auto& [c, end, accounting] = *s.final;
  d["blocks"] = c.blocks;
  d["samples"] = c.samples;
  d["missing_blocks"] = accounting.end.missing_blocks;
  d["missing_samples"] = accounting.end.missing_samples;
  d["blocks_produced"] = end.blocks_produced;
  d["samples_produced"] = end.samples_produced;
  d["blocks_dropped"] = accounting.end.dropped_blocks;
  d["samples_dropped"] = accounting.end.dropped_samples;
  d["blocks_unsent"] = end.blocks_unsent;
  d["samples_unsent"] = end.samples_unsent;
  d["lost_in_transit_blocks"] = accounting.lost_in_transit_blocks;
  d["lost_in_transit_samples"] = accounting.lost_in_transit_samples;
  d["end_of_stream"] = true;
  d["exact"] = accounting.end.exact();
  return d;
}

}  // namespace

PYBIND11_MODULE(_sring, m) {
  m.doc() = "sring: zero-copy consumer of an sring ring, blocks as numpy views";
  m.attr("SRING_ABI_VERSION") = std::to_string(SRING_ABI_VERSION_MAJOR) + "." + std::to_string(SRING_ABI_VERSION_MINOR);

  // Block.array(dtype=...) asked for a dtype that is not the samples' own.
  py::register_exception<FormatMismatch>(m, "FormatMismatch", PyExc_ValueError);

  py::class_<PyBlock>(m, "Block", "One block of samples; valid as long as it or a view of it is alive.")
      .def_property_readonly("sequence", [](const PyBlock& b) { return b.header.sequence; })
      .def_property_readonly("first_sample", [](const PyBlock& b) { return b.header.first_sample; },
                             "index of the block's first frame since the reset")
      .def_property_readonly("timestamp_ns", [](const PyBlock& b) { return b.header.timestamp_ns; })
      .def_property_readonly("flags", [](const PyBlock& b) { return b.header.flags; })
      .def_property_readonly("sample_count", [](const PyBlock& b) { return b.header.sample_count; },
                             "frames in the block (a frame is one sample of each channel)")
      .def_property_readonly("frames", &PyBlock::frames, "frames in the block: samples.shape[0] (sample_count)")
      .def_property_readonly("format", [](const PyBlock& b) { return sring::format_name(b.layout.format); },
                             "the sample format's name: 'u8', 's8', 'u16', 's16', 's32', 'f32', 'cs16', 'cf32', "
                             "'sim-packed12', or 'device-0x8001' for another device's own")
      .def_property_readonly("channels", [](const PyBlock& b) { return b.layout.channels; },
                             "channels per frame: samples.shape[1]")
      .def_property_readonly("bits_per_sample", [](const PyBlock& b) { return b.layout.bits_per_sample; },
                             "bits of one sample of one channel (cs16: 32, I and Q)")
      .def_property_readonly("payload_bytes", &PyBlock::payload_bytes, "bytes of samples in the block")
      .def_property_readonly("position", [](const PyBlock& b) { return b.position; },
                             "ring position of the block's header")
      .def_property_readonly("lost_before", [](const PyBlock& b) { return b.lost_before; },
                             "samples (frames) missing right before this block")
      .def_property_readonly(
          "samples", &samples_of,
          "read-only numpy array of the samples, one row per frame, one column per channel:\n"
          "  u8 s8 u16 s16 s32 f32: uint8 int8 uint16 int16 int32 float32, shape (frames, channels)\n"
          "  cf32: complex64, shape (frames, channels)\n"
          "  cs16: int16, shape (frames, channels, 2), I then Q on the last axis\n"
          "  a device's own format (sim-packed12, ...): uint8, its payload bytes, shape (payload_bytes,)\n"
          "numpy has no complex int16: plain int16 keeps integer arithmetic exact, and "
          "x.astype(np.float32).view(np.complex64)[..., 0] gives complex64 (frames, channels); a structured "
          "dtype would allow neither. One channel is shape (frames, 1) too: x[:, 0] is that channel. "
          "A view of the ring (zero-copy), or under overwrite-oldest (and from sring.subscribe) a checked copy.")
      .def(
          "array",
          [](py::object self, py::object dtype) -> py::array {
            py::array samples = samples_of(self);
            if (dtype.is_none()) return samples;
            const py::dtype wanted = py::dtype::from_args(dtype);
            if (!wanted.equal(samples.dtype())) {
              const auto& b = self.cast<PyBlock&>();
              auto name = [](const py::dtype& d) { return d.attr("name").cast<std::string>(); };
              throw FormatMismatch("the block is " + sring::describe(b.layout) + ": its samples are " +
                                   name(samples.dtype()) + ", not " + name(wanted) +
                                   " (nothing is converted in place: samples.astype() makes a converted copy)");
            }
            return samples;
          },
          py::arg("dtype") = py::none(),
          "the samples (as `samples`), checking that `dtype` is theirs: sring.FormatMismatch (a ValueError) if "
          "it is not, as C++'s Block::as<T>() throws. Nothing is converted or copied.")
      .def_property_readonly(
          "payload",
          [](py::object self) -> py::array {
            auto& b = self.cast<PyBlock&>();
            if (b.copy) return read_only(b.copy->attr("reshape")(-1).attr("view")(py::dtype::of<uint8_t>()));
            return read_only(py::array(py::dtype::of<uint8_t>(), {static_cast<py::ssize_t>(b.payload_bytes())},
                                       {py::ssize_t{1}}, b.payload, self));
          },
          "read-only uint8 numpy array of the block's payload bytes, in any format (a view of the ring as "
          "`samples` is)")
      .def("__repr__", [](const PyBlock& b) {
        return "<sring.Block sequence=" + std::to_string(b.header.sequence) +
               " first_sample=" + std::to_string(b.header.first_sample) +
               " frames=" + std::to_string(b.header.sample_count) + " " + sring::describe(b.layout) + ">";
      });

  py::class_<Blocks>(m, "Blocks")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](Blocks& it) -> py::object {
        auto block = next_block(it.session, it.timeout);
        if (!block) throw py::stop_iteration();
        return *block;
      });

  py::class_<PyRing>(m, "Ring", "One consumer of an sring ring. Use sring.open(), sring.connect() or sring.simulate().")
      .def("configure",
           [](PyRing& r, const py::kwargs& kwargs) {
             auto& s = r.s();
             if (s.device) {
               sring_config c = checked(s.device->config());
               apply(c, kwargs);
               check(s.device->configure(c));
             } else if (s.host) {
               if (s.sim_ran) {
                throw std::runtime_error("configure() before start(): a simulated ring runs once, with the settings "
                                         "it had; make another with sring.simulate()");
              }
               sring_config c = sring::sim::to_device_config(s.sim_config);
               apply(c, kwargs);
               const sring::sim::SimConfig next = sim_config_from(c);
               check(sring::sim::validate_config(next, s.ring->ring_size()));
               s.sim_config = next;
             } else {
               raise(sring::Error{EOPNOTSUPP, "a ring from sring-sim is configured by sring-sim"});
             }
           },
           "set any of: sample_rate (frames/s), block_bytes or block_samples (frames per block, whatever "
           "order the settings come in), overrun_policy ('drop', 'overwrite', 'stop'), sample_format ('u8', "
           "'s8', 'u16', 's16', 's32', 'f32', 'cs16', 'cf32', 'sim-packed12', or a device's own format "
           "number), channels (1 to 256), pattern_seed, flush_timeout_us; ValueError for a bad value, and "
           "nothing changes")
      .def("config",
           [](PyRing& r) {
             auto& s = r.s();
             if (s.device) {
               const sring_config c = checked(s.device->config());
               // A device's own format: the size its driver declared on the
               // ring, once configured.
               const sring::SampleLayout on_ring = sring::SampleLayout::from_page(s.ring->producer());
               uint32_t bits = known_bits(c.sample_format);
               if (bits == 0 && on_ring.format == c.sample_format) bits = on_ring.bits_per_sample;
               return config_dict(c, bits);
             }
             if (s.host && !s.sim_ran) {
               const sring_config c = sring::sim::to_device_config(s.sim_config);
               return config_dict(c, known_bits(c.sample_format));
             }
             const auto& p = s.ring->producer();
             sring_config c{};
             c.sample_rate = sring::load_relaxed(p.sample_rate);
             c.block_bytes = sring::load_relaxed(p.block_bytes);
             c.overrun_policy = sring::load_relaxed(p.overrun_policy);
             c.sample_format = sring::load_relaxed(p.sample_format);
             c.pattern_seed = sring::load_relaxed(p.pattern_seed);
             const sring::SampleLayout layout = sring::SampleLayout::from_page(p);
             c.channels = layout.channels;
             return config_dict(c, layout.bits_per_sample);
           },
           "the configuration: the settings of configure(), with sample_format by name, channels, "
           "bits_per_sample and block_samples (frames per block; None for a device's own format whose size "
           "is not known yet)")
      .def(
          "start",
          [](PyRing& r, std::optional<double> duration) {
            auto& s = r.s();
            if (s.device) {
              if (duration) throw py::value_error("duration: for a simulated ring only");
              check(s.device->start());
              s.started = true;
            } else if (s.host) {
              if (s.sim_ran) throw std::runtime_error("a simulated ring runs once: make another with sring.simulate()");
              s.sim = std::make_unique<sring::sim::SimDevice>(*s.host, s.sim_config);
              check(s.sim->set_eventfd(s.sim_eventfd.get()));
              if (duration && !(*duration > 0 && std::isfinite(*duration))) {
                throw py::value_error("duration: seconds > 0, or None for until stop()");
              }
              check(s.sim->start(duration ? std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                std::chrono::duration<double>(*duration))
                                          : std::chrono::nanoseconds{}));
              s.sim_ran = true;
            } else {
              if (duration) throw py::value_error("duration: sring-sim --duration sets it");
              // The simulator answers once its device runs, so that "not
              // running" afterwards means the stream is over.
              sring::Status sent = sring::ok();
              sring::Expected<uint8_t> answer = uint8_t{0};
              {
                py::gil_scoped_release no_gil;  // up to 30 s: let other threads run
                sent = sring::sim::send_byte(s.sim_socket.get(), 1);
                if (sent) answer = sring::sim::receive_byte(s.sim_socket.get(), std::chrono::seconds(30));
              }
              check(sent);
              checked(std::move(answer));
            }
          },
          py::arg("duration") = py::none(), "start the device (a simulated one for `duration` seconds, or until stop())")
      .def(
          "stop", [](PyRing& r) { stop(*r.session); },
          "stop the device; the blocks it made stay to be read (may be called from any thread)")
      .def("reset",
           [](PyRing& r) {
             auto& s = r.s();
             if (!s.device) raise(sring::Error{EOPNOTSUPP, "reset: a device only"});
             if (!s.pinned.empty()) {
               throw std::runtime_error("reset() while numpy views of " + std::to_string(s.pinned.size()) +
                                        " blocks are alive: a reset rewrites their memory");
             }
             check(s.device->reset());
             // A reset moves head and tail: attach anew (into a local first,
             // so a failure leaves the old ring in place), count from sample 0.
             auto ring = checked(s.device->attach());
             check(ring.enable_eventfd());
             s.consumer.reset();
             s.retired.push_back(std::move(*s.ring));  // ring.data views may still point into it
             s.ring.emplace(std::move(ring));
             s.new_consumer();
           })
      .def(
          "blocks",
          [](PyRing& r, std::optional<double> timeout) {
            auto& s = r.s();
            // Not an empty stream: a mistake (a device started elsewhere is
            // fine; a simulated one only runs when started here).
            if (s.host && !s.sim_ran) throw std::runtime_error("blocks() before start(): the simulated device has not run");
            return Blocks{r.session, timeout};
          },
          py::arg("timeout") = py::none(),
          "iterate over the blocks until the end of the stream (or `timeout` seconds with none), waiting without "
          "the GIL")
      .def(
          "next_block",
          [](PyRing& r, std::optional<double> timeout) -> py::object {
            auto block = next_block(r.session, timeout);
            return block ? *block : py::none();
          },
          py::arg("timeout") = 0.0, "the next block, waiting up to `timeout` seconds (None: forever); None if none")
      .def("counters", [](PyRing& r) { return counters_dict(r.readable().consumer->snapshot()); },
           "the stream's accounting; final (and `exact` meaningful) once end_of_stream")
      .def_property_readonly("end_of_stream", [](PyRing& r) { return r.readable().consumer->end_of_stream(); })
      .def_property_readonly("state", [](PyRing& r) { return std::string(sring::state_name(r.readable().ring->state())); })
      .def_property_readonly("ring_size", [](PyRing& r) { return r.readable().ring->ring_size(); })
      .def_property_readonly(
          "data",
          [](py::object self) {
            auto& s = self.cast<PyRing&>().s();
            // The whole data mapping, mirrored: 2 * ring_size bytes.
            return read_only(py::array(py::dtype::of<uint8_t>(), {static_cast<py::ssize_t>(2 * s.ring->ring_size())},
                                       {py::ssize_t{1}}, s.ring->data(), self));
          },
          "read-only numpy view of the ring's data mapping (mirrored, 2 * ring_size bytes)")
      .def("close", [](PyRing& r) { close(*r.session); })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyRing& r, py::args) {
        close(*r.session);
        return false;
      });

  py::class_<PySubscriber>(m, "Subscriber",
                           "Blocks from sring-publish over ZeroMQ; iterate it. Use sring.subscribe().")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](PySubscriber& s) -> py::object {
             auto block = next_net_block(s);
             if (!block) throw py::stop_iteration();
             return *block;
           })
      .def("counters", &net_counters,
           "the stream's accounting, as Ring.counters() (final, and `exact` meaningful, once end_of_stream); "
           "blocks_dropped/samples_dropped include what the publisher never sent")
      .def_property_readonly("end_of_stream", [](const PySubscriber& s) { return s.ended; })
      .def_property_readonly("pattern_seed", [](const PySubscriber& s) { return s.pattern_seed; },
                             "the stream's pattern seed, as carried by its last message (0 before any)");

  m.def("subscribe", &subscribe, py::arg("endpoint"), py::arg("pattern") = "pull", py::arg("timeout") = 10.0,
        py::arg("hwm") = 1000,
        "connect to an sring-publish endpoint (tcp://host:5555): pattern 'pull' (a worker of --pattern push) or "
        "'sub' (a monitor of --pattern pub). Iterating yields Blocks until the publisher's end of stream; "
        "TimeoutError after `timeout` seconds without a message (None: no limit). A block's samples are a "
        "read-only copy of the received message (libzmq reuses it), and its position is its sequence number. "
        "Receiving releases the GIL; Ctrl-C raises KeyboardInterrupt.");
  m.def("open", &open_device, py::arg("path") = "/dev/sring0", py::arg("wait") = "eventfd",
        "open a device (/dev/sringN) as its consumer");
  m.def("connect", &connect_simulator, py::arg("socket"), py::arg("timeout") = 5.0,
        "consume the ring of an `sring-sim --socket PATH` process");
  m.def("simulate", &simulate, py::arg("ring_size") = 4 * 1024 * 1024,
        "an in-process simulated device; settings as for Ring.configure()");
  m.def(
      "pattern",
      [](uint64_t first_sample, uint32_t count, uint32_t seed) {
        py::array_t<uint16_t> out(count);
        sring_pattern_fill(out.mutable_data(), first_sample, count, seed);
        return out;
      },
      py::arg("first_sample"), py::arg("count"), py::arg("seed") = 1,
      "the test pattern the simulated devices write: samples first_sample .. first_sample + count - 1");
}
