// A SoapySDR client of driver=sring that reads with readStream(): every
// sample checked against the pattern in any channel subset and format the
// module converts to, losses accounted from SOAPY_SDR_OVERFLOW and
// readSetting("samples_dropped"), to the end of the stream
// (SOAPY_SDR_END_BURST). Prints one result line (client_common.hpp).
#include "soapy/clients/client_common.hpp"

using namespace soapy_client;

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  return guarded("soapy-stream-client", [&] {
    DevicePtr device = make_device(o.args);
    const DeviceFacts f = facts(*device);
    const std::string format = o.format.empty() ? f.native_format : o.format;
    // The device says first whether it streams this format (setupStream
    // throws if not); then whether this client can check it.
    SoapySDR::Stream* stream = device->setupStream(SOAPY_SDR_RX, format, o.channels);
    const Verifier verifier(f.native, f.native_format, f.channels, f.seed, format);
    const size_t bytes = SoapySDR::formatToSize(format);
    std::vector<std::vector<uint8_t>> buffers(o.channels.size(), std::vector<uint8_t>(o.elems * bytes));
    std::vector<void*> pointers;
    for (auto& b : buffers) pointers.push_back(b.data());

    Tally t;
    const double seconds = read_to_end(*device, stream, o, t, [&] {
      int flags = 0;
      long long time_ns = 0;
      const int n = device->readStream(stream, pointers.data(), o.elems, flags, time_ns, 100000);
      if (n > 0) {
        t.on_time(flags, time_ns);
        const uint64_t before = t.mismatches;
        for (size_t i = 0; i < o.channels.size(); ++i) {
          t.mismatches += verifier.check(buffers[i].data(), t.next, static_cast<size_t>(n),
                                         static_cast<uint32_t>(o.channels[i]));
        }
        if (t.mismatches != before) ++t.bad_reads;
        t.next += static_cast<uint64_t>(n);
        t.delivered += static_cast<uint64_t>(n);
      }
      if (n >= 0 && (flags & SOAPY_SDR_END_BURST)) t.ended = true;
      return n;
    });
    const int code = report("soapy-stream-client", *device, t, seconds);
    device->closeStream(stream);
    return code;
  });
}
