// driver=sring: a SoapySDR 0.8 device over an sring ring (docs/soapysdr.md).
//
// The ring is opened with tools/session.hpp's open_session(), like acquire
// does, and read with ringlib's Consumer: readStream() copies (converting
// through SoapySDR's ConverterRegistry and de-interleaving channels) and the
// direct buffer access API hands blocks out in place, Consumer::next() and
// done() underneath. RX only; one stream at a time (a ring has one consumer).
#pragma once

#include <SoapySDR/ConverterRegistry.hpp>
#include <SoapySDR/Device.hpp>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "soapy/device_args.hpp"
#include "sring/consumer.hpp"
#include "tools/session.hpp"

namespace sring::soapy {

// sring's format as SoapySDR names it ("U16", "CS16", ...); empty for a
// format SoapySDR has no name for (sim-packed12, a driver's own).
std::string soapy_format(uint32_t sring_format);
// What a sample of the native format reads as full scale (getNativeStreamFormat).
double full_scale(uint32_t sring_format);

// sim_socket= paths this process has a device open on (find() keeps listing
// them once sring-sim's socket is gone: registration.cpp).
bool socket_open_here(const std::string& path);

// A device's entry among those paths, for as long as it lives.
class SocketClaim {
 public:
  explicit SocketClaim(std::string path);
  ~SocketClaim();
  SocketClaim(const SocketClaim&) = delete;
  SocketClaim& operator=(const SocketClaim&) = delete;

 private:
  std::string path_;
};

// One stream: the caller's channels and format, and where it is in the ring.
struct SringStream {
  std::vector<size_t> channels;  // device channels, in the order of the caller's buffers
  std::string format;            // the caller's SoapySDR format
  SoapySDR::ConverterRegistry::ConverterFunction convert = nullptr;  // nullptr: the native format
  size_t out_bytes = 0;          // bytes of one sample in the caller's format
  bool direct = false;           // one channel of one, native format (direct_access() says the rest)
  bool active = false;

  std::unique_ptr<Consumer> consumer;
  // The block being read: handed out by Consumer::next(), not done yet.
  // readStream() returns it across calls (offset: frames already returned);
  // a block with a loss before it waits here after the SOAPY_SDR_OVERFLOW.
  std::optional<Block> current;
  uint64_t offset = 0;
  uint64_t current_lost = 0;  // its Block::lost_before(), in pending_lost
  bool gap_reported = false;
  // Direct access: blocks handed out (after `current`), oldest first, with
  // their handle, frames, the loss before them and whether the caller
  // released them.
  struct Held {
    size_t handle;
    uint64_t frames;
    uint64_t lost;
    bool released;
  };
  std::deque<Held> held;

  // The stream's accounting, in frames (samples per channel), is the
  // Consumer's (blocks done and counted, the gaps between them: a block the
  // producer took back while it was read, under overwrite-oldest, is not
  // counted, and the next one counted has its frames in its gap), plus the
  // blocks handed out and not done yet: pending_frames of theirs returned
  // (readStream()) or handed out (acquireReadBuffer()), and the gaps before
  // them, pending_lost (reported as SOAPY_SDR_OVERFLOW). delivered() and
  // dropped() in sring_device.cpp add them up.
  uint64_t pending_frames = 0;
  uint64_t pending_lost = 0;
  uint64_t handed_end = 0;     // ring position after the last block handed out
  uint64_t overflows = 0;      // SOAPY_SDR_OVERFLOW returned
  uint64_t overflows_status = 0;  // ... of those, told by readStreamStatus()
  long long last_gap_time = 0;    // the time of the first frame after the latest gap
  uint64_t not_counted = 0;    // overwrite-oldest: blocks read, then taken back by the producer
  bool end_reported = false;   // SOAPY_SDR_END_BURST given
  bool end_zero_given = false; // ... and once with 0 samples: later reads wait their timeout
  long long last_time = 0;     // timeNs returned last
  std::vector<std::byte> scratch;  // de-interleaving before a conversion
};

class SringDevice final : public SoapySDR::Device {
 public:
  // Opens the source (throws std::runtime_error saying why not).
  explicit SringDevice(DeviceOptions options);
  ~SringDevice() override;

  // --- identification ---
  std::string getDriverKey() const override { return "sring"; }
  std::string getHardwareKey() const override;
  SoapySDR::Kwargs getHardwareInfo() const override;
  size_t getNumChannels(int direction) const override;
  SoapySDR::Kwargs getChannelInfo(int direction, size_t channel) const override;

  // --- streams ---
  std::vector<std::string> getStreamFormats(int direction, size_t channel) const override;
  std::string getNativeStreamFormat(int direction, size_t channel, double& fullScale) const override;
  SoapySDR::Stream* setupStream(int direction, const std::string& format, const std::vector<size_t>& channels,
                                const SoapySDR::Kwargs& args) override;
  void closeStream(SoapySDR::Stream* stream) override;
  size_t getStreamMTU(SoapySDR::Stream* stream) const override;
  int activateStream(SoapySDR::Stream* stream, int flags, long long timeNs, size_t numElems) override;
  int deactivateStream(SoapySDR::Stream* stream, int flags, long long timeNs) override;
  int readStream(SoapySDR::Stream* stream, void* const* buffs, size_t numElems, int& flags, long long& timeNs,
                 long timeoutUs) override;
  int readStreamStatus(SoapySDR::Stream* stream, size_t& chanMask, int& flags, long long& timeNs,
                       long timeoutUs) override;

  // --- direct buffer access ---
  size_t getNumDirectAccessBuffers(SoapySDR::Stream* stream) override;
  int getDirectAccessBufferAddrs(SoapySDR::Stream* stream, size_t handle, void** buffs) override;
  int acquireReadBuffer(SoapySDR::Stream* stream, size_t& handle, const void** buffs, int& flags, long long& timeNs,
                        long timeoutUs) override;
  void releaseReadBuffer(SoapySDR::Stream* stream, size_t handle) override;

  // --- sample rate ---
  void setSampleRate(int direction, size_t channel, double rate) override;
  double getSampleRate(int direction, size_t channel) const override;
  std::vector<double> listSampleRates(int direction, size_t channel) const override;
  SoapySDR::RangeList getSampleRateRange(int direction, size_t channel) const override;

  // --- time: the blocks' clock ---
  bool hasHardwareTime(const std::string& what) const override;
  long long getHardwareTime(const std::string& what) const override;

  // --- settings ---
  SoapySDR::ArgInfoList getSettingInfo() const override;
  void writeSetting(const std::string& key, const std::string& value) override;
  std::string readSetting(const std::string& key) const override;

 private:
  // Closes and opens the session again with options_ (a new configuration,
  // or a new run after one ended); on failure the old options come back.
  void reopen(const DeviceOptions& previous);
  // readSetting() with mutex_ held (getSettingInfo() lists the values too).
  std::string read_setting(const std::string& key) const;
  void open();
  void close_session();
  SringStream& stream_of(SoapySDR::Stream* stream) const;
  const sring_producer_page& page() const { return session_.ring->producer(); }
  SampleLayout layout() const { return session_.ring->layout(); }
  uint64_t rate() const;
  uint32_t block_bytes() const;
  void check_rx(int direction, size_t channel) const;
  // Why the stream has no direct buffer access now; empty if it has.
  std::string no_direct_access(const SringStream& stream) const;
  // Waits (giving mutex_, held, up while it waits) until no read is waiting
  // for data unlocked: whatever closes, resets or releases into the ring or
  // the stream's Consumer calls it first.
  void wait_for_readers() const;
  void refuse_while_active(const std::string& what) const;

  // The stream's next block into stream.current, waiting up to timeout
  // (mutex_ held on entry and exit, given up during the wait itself): 1 if
  // one came, 0 if none. Throws nothing: ring errors come back as a code.
  int fetch(SringStream& stream, long timeoutUs, bool wait);
  // Blocks handed out are done: no longer pending (counted or taken back,
  // the Consumer's accounting has them now).
  static void no_longer_pending(SringStream& stream, uint64_t frames, uint64_t lost);
  // The end of the stream: the producer stopped and everything was handed out.
  bool at_end(const SringStream& stream) const;
  // Direct access: the producer stopped and every block it made was handed
  // out (some may still be held).
  bool handed_all(const SringStream& stream) const;
  // What readStream()/acquireReadBuffer() return once the end was reported.
  int after_end(SringStream& stream, int& flags, long timeoutUs);
  // Marks the current block done (it was handed out in full).
  int finish_current(SringStream& stream);
  // The estimated CLOCK_MONOTONIC time of frame `frame` of a block.
  long long frame_time(const Block& block, uint64_t frame) const;
  // The time returned for a read: the estimate, never before the last one.
  long long stream_time(SringStream& stream, long long estimate) const;
  size_t slot_of(const Block& block) const;
  void copy_out(SringStream& stream, const Block& block, uint64_t from, size_t frames, void* const* buffs,
                size_t at);

  mutable std::mutex mutex_;
  // Reads waiting in Ring::wait() with mutex_ released (readSetting() and
  // the rest stay answerable meanwhile); no_waiters_ tells when it is 0.
  int waiters_ = 0;
  mutable std::condition_variable_any no_waiters_;
  DeviceOptions options_;
  Session session_;
  bool session_started_ = false;  // the producer ran on this session: a new activation opens anew
  std::unique_ptr<SringStream> stream_;
  std::optional<SocketClaim> socket_claim_;  // sim_socket=: while the device is open
};

}  // namespace sring::soapy
