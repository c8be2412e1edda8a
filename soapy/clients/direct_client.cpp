// A SoapySDR client of driver=sring that reads with the direct buffer
// access API: acquireReadBuffer() hands out blocks in place in the ring,
// checked against the pattern when acquired and again just before they are
// released, `--hold N` at a time and released newest first (out of order),
// so that a release that gave back a block still held shows as samples
// changed under us. Prints one result line (client_common.hpp).
#include "soapy/clients/client_common.hpp"

using namespace soapy_client;

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  return guarded("soapy-direct-client", [&] {
    DevicePtr device = make_device(o.args);
    const DeviceFacts f = facts(*device);
    SoapySDR::Stream* stream = device->setupStream(SOAPY_SDR_RX, f.native_format, {0});
    const Verifier verifier(f.native, f.native_format, 1, f.seed, f.native_format);
    const size_t buffers = device->getNumDirectAccessBuffers(stream);
    if (buffers == 0) throw std::runtime_error("the stream has no direct access buffers");
    std::vector<const void*> addresses(buffers);
    for (size_t h = 0; h < buffers; ++h) {
      void* address = nullptr;
      if (device->getDirectAccessBufferAddrs(stream, h, &address) != 0) {
        throw std::runtime_error("getDirectAccessBufferAddrs failed");
      }
      addresses[h] = address;
    }

    struct Held {
      size_t handle;
      const void* data;
      uint64_t first;
      size_t frames;
      bool bad;  // mismatched when acquired
    };
    std::vector<Held> held;
    Tally t;
    uint64_t address_errors = 0;
    auto release_all = [&] {
      // Newest first: the module must still give the ring back oldest
      // first. A slow client pauses after the first release: a module that
      // gave the producer an older block still held would see it
      // overwritten meanwhile (the ring is full), and the check before each
      // release finds it.
      bool first = true;
      while (!held.empty()) {
        const Held h = held.back();
        held.pop_back();
        const uint64_t late = verifier.check(h.data, h.first, h.frames, 0);
        t.late_mismatches += late;
        if (h.bad || late != 0) ++t.bad_reads;
        device->releaseReadBuffer(stream, h.handle);
        if (first && o.slow_us > 0 && !held.empty()) std::this_thread::sleep_for(std::chrono::microseconds(o.slow_us));
        first = false;
      }
    };
    const double seconds = read_to_end(*device, stream, o, t, [&] {
      size_t handle = 0;
      const void* data = nullptr;
      int flags = 0;
      long long time_ns = 0;
      const int n = device->acquireReadBuffer(stream, handle, &data, flags, time_ns, 100000);
      if (n >= 0 && (flags & SOAPY_SDR_END_BURST)) t.ended = true;
      if (n <= 0) return n;  // 0: the end, nothing to release
      t.on_time(flags, time_ns);
      if (handle >= buffers || addresses[handle] != data) ++address_errors;
      const uint64_t wrong = verifier.check(data, t.next, static_cast<size_t>(n), 0);
      t.mismatches += wrong;
      held.push_back({handle, data, t.next, static_cast<size_t>(n), wrong != 0});
      t.next += static_cast<uint64_t>(n);
      t.delivered += static_cast<uint64_t>(n);
      if (held.size() >= o.hold || t.ended) release_all();
      return n;
    });
    release_all();
    std::printf("soapy-direct-client: buffers=%zu address_errors=%llu\n", buffers,
                static_cast<unsigned long long>(address_errors));
    int code = report("soapy-direct-client", *device, t, seconds);
    if (address_errors) code = 1;
    device->closeStream(stream);
    return code;
  });
}
