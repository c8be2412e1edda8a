// Streams of driver=sring: readStream() (copy, convert, de-interleave) and
// direct buffer access (blocks in place), both over one ringlib Consumer.
// docs/soapysdr.md says what the caller sees: timestamps, overflows, the end.
#include <SoapySDR/Errors.hpp>
#include <SoapySDR/Formats.hpp>
#include <SoapySDR/Logger.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "soapy/sring_device.hpp"

namespace sring::soapy {
namespace {

SoapySDR::Stream* as_handle(SringStream* stream) { return reinterpret_cast<SoapySDR::Stream*>(stream); }

// Every `stride`-th sample of `bytes` bytes from src, n of them, packed into dst.
template <typename T>
void gather(const std::byte* src, std::byte* dst, size_t n, size_t stride) {
  const T* in = reinterpret_cast<const T*>(src);
  T* out = reinterpret_cast<T*>(dst);
  for (size_t k = 0; k < n; ++k) out[k] = in[k * stride];
}

void gather_bytes(const std::byte* src, std::byte* dst, size_t n, size_t channels, size_t bytes) {
  switch (bytes) {
    case 1: gather<uint8_t>(src, dst, n, channels); break;
    case 2: gather<uint16_t>(src, dst, n, channels); break;
    case 4: gather<uint32_t>(src, dst, n, channels); break;
    default: gather<uint64_t>(src, dst, n, channels); break;  // cf32
  }
}

void sleep_for_timeout(long timeoutUs) {
  if (timeoutUs > 0) std::this_thread::sleep_for(std::chrono::microseconds(timeoutUs));
}

// A stream never activated: SoapySDR asks an inactive stream to wait the
// timeout and say so (not holding the device meanwhile); readStreamStatus()
// with nothing to tell does the same.
int wait_timeout(std::unique_lock<std::mutex>& lock, long timeoutUs) {
  lock.unlock();
  sleep_for_timeout(timeoutUs);
  return SOAPY_SDR_TIMEOUT;
}

}  // namespace

SringStream& SringDevice::stream_of(SoapySDR::Stream* stream) const {
  if (!stream_ || as_handle(stream_.get()) != stream) throw std::invalid_argument("sring: not a stream of this device");
  return *stream_;
}

SoapySDR::Stream* SringDevice::setupStream(int direction, const std::string& format,
                                           const std::vector<size_t>& channels, const SoapySDR::Kwargs& args) {
  std::lock_guard lock(mutex_);
  if (direction != SOAPY_SDR_RX) throw std::runtime_error("sring: receive only (SOAPY_SDR_RX)");
  if (stream_) throw std::runtime_error("sring: one stream at a time (a ring has one consumer): closeStream() first");
  if (!args.empty()) {
    throw std::runtime_error("sring: no stream arguments (got '" + SoapySDR::KwargsToString(args) +
                             "'): configure the device with its arguments or writeSetting()");
  }
  const SampleLayout native_layout = layout();
  const std::string native = soapy_format(native_layout.format);
  if (native.empty()) {
    throw std::runtime_error("sring: the device's format " + format_name(native_layout.format) +
                             " has no SoapySDR name: configure a standard one (format=u16, cs16, ...)");
  }
  auto stream = std::make_unique<SringStream>();
  stream->channels = channels.empty() ? std::vector<size_t>{0} : channels;
  for (size_t i = 0; i < stream->channels.size(); ++i) {
    if (stream->channels[i] >= native_layout.channels) {
      throw std::runtime_error("sring: channel " + std::to_string(stream->channels[i]) +
                               " does not exist (the device has " + std::to_string(native_layout.channels) + ")");
    }
    if (std::count(stream->channels.begin(), stream->channels.end(), stream->channels[i]) > 1) {
      throw std::runtime_error("sring: channel " + std::to_string(stream->channels[i]) + " asked for twice");
    }
  }
  stream->format = format;
  if (format != native) {
    const auto targets = SoapySDR::ConverterRegistry::listTargetFormats(native);
    if (std::find(targets.begin(), targets.end(), format) == targets.end()) {
      std::string can;
      for (const auto& t : targets) can += (can.empty() ? "" : ", ") + t;
      throw std::runtime_error("sring: the device streams " + native + " (format=" + format_name(native_layout.format) +
                               "), which SoapySDR converts to " + can + ", not to '" + format +
                               "': ask for one of those, or configure the device's format");
    }
    // Scaler 1.0: SoapySDR 0.8's converters then map the native full scale
    // (getNativeStreamFormat) to +-1.0 and back.
    stream->convert = SoapySDR::ConverterRegistry::getFunction(native, format);
  }
  stream->out_bytes = SoapySDR::formatToSize(format);
  stream->direct = native_layout.channels == 1 && !stream->convert;
  stream_ = std::move(stream);
  return as_handle(stream_.get());
}

void SringDevice::closeStream(SoapySDR::Stream* stream) {
  std::lock_guard lock(mutex_);
  SringStream& s = stream_of(stream);
  // The producer stops first: a read waiting for data then wakes at once.
  if (s.active && session_.producer) (void)session_.producer->stop_now();
  s.active = false;
  wait_for_readers();
  (void)stream_of(stream);  // another thread may have closed it meanwhile
  stream_.reset();
}

size_t SringDevice::getStreamMTU(SoapySDR::Stream* stream) const {
  std::lock_guard lock(mutex_);
  (void)stream_of(stream);
  return layout().frames_per_block(block_bytes());
}

int SringDevice::activateStream(SoapySDR::Stream* stream, int flags, long long, size_t numElems) {
  std::lock_guard lock(mutex_);
  if (stream_of(stream).active) return 0;
  if (flags != 0 || numElems != 0) {
    SoapySDR::log(SOAPY_SDR_ERROR, "sring: activateStream takes no flags, time or burst length: it streams until "
                                   "deactivated");
    return SOAPY_SDR_NOT_SUPPORTED;
  }
  // The Consumer is replaced below: no read may still be waiting on it
  // (the producer is stopped, so one that is wakes at once).
  wait_for_readers();
  SringStream& s = stream_of(stream);
  if (s.active) return 0;
  s.consumer.reset();
  s.current.reset();
  s.held.clear();
  if (session_started_) {
    // The producer ran on this session already: a new run needs a new one.
    if (options_.source.kind == Source::kSimSocket) {
      SoapySDR::log(SOAPY_SDR_ERROR, "sring: an sring-sim process serves one run: start another for a new one");
      return SOAPY_SDR_NOT_SUPPORTED;
    }
    try {
      reopen(options_);
    } catch (const std::exception& e) {
      SoapySDR::log(SOAPY_SDR_ERROR, e.what());
      return SOAPY_SDR_STREAM_ERROR;
    }
  }
  const auto channels = s.channels;
  const auto format = s.format;
  const auto convert = s.convert;
  const auto out_bytes = s.out_bytes;
  const bool direct = s.direct;
  s = SringStream{};  // the counters start again with the run
  s.channels = channels;
  s.format = format;
  s.convert = convert;
  s.out_bytes = out_bytes;
  s.direct = direct;
  Ring& ring = *session_.ring;
  if (options_.watermark) ring.set_wakeup_watermark(options_.watermark);
  s.consumer = std::make_unique<Consumer>(ring);
  session_started_ = true;
  if (auto started = session_.producer->start(options_.duration_s); !started) {
    SoapySDR::log(SOAPY_SDR_ERROR, "sring: cannot start " + session_.description + ": " + started.error().message);
    return SOAPY_SDR_STREAM_ERROR;
  }
  s.active = true;
  return 0;
}

int SringDevice::deactivateStream(SoapySDR::Stream* stream, int flags, long long) {
  std::lock_guard lock(mutex_);
  SringStream& s = stream_of(stream);
  if (flags != 0) return SOAPY_SDR_NOT_SUPPORTED;
  if (!s.active) return 0;
  s.active = false;
  // The producer stops; what it made stays readable, then the end of the
  // stream (SOAPY_SDR_END_BURST).
  if (auto stopped = session_.producer->stop_now(); !stopped) {
    SoapySDR::log(SOAPY_SDR_ERROR, "sring: cannot stop " + session_.description + ": " + stopped.error().message);
    return SOAPY_SDR_STREAM_ERROR;
  }
  return 0;
}

// --- reading -------------------------------------------------------------

void SringDevice::wait_for_readers() const {
  no_waiters_.wait(mutex_, [this] { return waiters_ == 0; });
}

int SringDevice::fetch(SringStream& s, long timeoutUs, bool wait) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(std::max(timeoutUs, 0L));
  bool waited = false;
  for (;;) {
    auto next = s.consumer->next();
    if (!next) {
      SoapySDR::log(SOAPY_SDR_ERROR, "sring: " + next.error().message);
      return SOAPY_SDR_STREAM_ERROR;
    }
    if (*next) {
      const Block& block = **next;
      s.current.emplace(block);
      s.offset = 0;
      s.current_lost = block.lost_before();
      s.gap_reported = block.lost_before() == 0;
      s.pending_lost += block.lost_before();
      if (block.lost_before() != 0) s.last_gap_time = frame_time(block, 0);
      s.handed_end = block.end_position();
      return 1;
    }
    if (!wait) return 0;
    // A wake-up without a whole block for us (a spurious one, or a block
    // the producer took back meanwhile) waits again for the time left.
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - std::chrono::steady_clock::now());
    if (waited && left.count() <= 0) return 0;
    waited = true;
    // Consumer::wait() is flush() then Ring::wait(): the flush with the
    // device held, the wait without it, so that settings, counters and
    // deactivateStream() stay answerable from other threads while a read
    // waits (GNU Radio polls read_setting()). The wait touches only the
    // ring's shared pages and its own statistics; whatever would close,
    // reset or release into the ring or the Consumer first waits for
    // waiters_ to be 0 (wait_for_readers()).
    s.consumer->flush();
    Ring& ring = s.consumer->ring();
    const WaitStrategy strategy = options_.source.wait;
    struct Unlocked {
      SringDevice& device;
      explicit Unlocked(SringDevice& d) : device(d) {
        ++device.waiters_;
        device.mutex_.unlock();
      }
      ~Unlocked() {
        device.mutex_.lock();
        if (--device.waiters_ == 0) device.no_waiters_.notify_all();
      }
      Unlocked(const Unlocked&) = delete;
      Unlocked& operator=(const Unlocked&) = delete;
    };
    Expected<bool> ready = [&] {
      Unlocked unlocked(*this);
      return ring.wait(strategy, std::max(left, std::chrono::nanoseconds(0)));
    }();
    if (!ready) {
      SoapySDR::log(SOAPY_SDR_ERROR, "sring: " + ready.error().message);
      return SOAPY_SDR_STREAM_ERROR;
    }
    if (!*ready) return 0;
  }
}

void SringDevice::no_longer_pending(SringStream& s, uint64_t frames, uint64_t lost) {
  // From here on the Consumer's accounting has them. A block the producer
  // took back while it was read (overwrite-oldest) is not counted as
  // delivered there: its frames, and the gap before it, become part of the
  // gap before the next block counted (that is also how the producer counts
  // them: dropped). So samples_dropped stays the producer's, and
  // delivered + dropped == produced. What was read of it may be torn, or
  // even a later lap's block (a block header read after the producer
  // rewrote it): not the frames it claimed to be.
  s.pending_frames -= frames;
  s.pending_lost -= lost;
}

bool SringDevice::handed_all(const SringStream& s) const {
  // State first (acquire), then head: nothing beyond that head will come.
  return !s.current && s.consumer && session_.ring->state() != SRING_STATE_RUNNING &&
         session_.ring->head() == s.handed_end;
}

bool SringDevice::at_end(const SringStream& s) const {
  return !s.current && s.held.empty() && s.consumer && s.consumer->end_of_stream();
}

int SringDevice::after_end(SringStream& s, int& flags, long timeoutUs) {
  // Reads after the last samples: 0 samples and SOAPY_SDR_END_BURST, at
  // once the first time, then after the caller's timeout, so that a client that
  // keeps reading (GNU Radio's source returns 0 items and is called again)
  // does not spin.
  flags = SOAPY_SDR_END_BURST;
  s.end_reported = true;
  const bool again = s.end_zero_given;
  s.end_zero_given = true;
  if (again) {
    // Not holding the device meanwhile (s is not touched after this).
    mutex_.unlock();
    sleep_for_timeout(timeoutUs);
    mutex_.lock();
  }
  return 0;
}

int SringDevice::finish_current(SringStream& s) {
  const uint64_t frames = s.current->frames();
  auto counted = s.consumer->done(1);
  s.current.reset();
  no_longer_pending(s, frames, s.current_lost);
  if (!counted) {
    SoapySDR::log(SOAPY_SDR_ERROR, "sring: " + counted.error().message);
    return SOAPY_SDR_STREAM_ERROR;
  }
  // Overwrite-oldest: the producer took the block back while it was read.
  if (*counted == 0) ++s.not_counted;
  return 0;
}

long long SringDevice::frame_time(const Block& block, uint64_t frame) const {
  // timestamp_ns is when the block completed, i.e. its last frame; earlier
  // frames are that much earlier at the configured rate. Flat out (rate 0)
  // there is no rate to go back by: the completion time itself.
  const uint64_t r = rate();
  const auto completed = static_cast<long long>(block.timestamp_ns());
  if (r == 0 || block.frames() == 0) return completed;
  const double back = static_cast<double>(block.frames() - 1 - frame) * 1e9 / static_cast<double>(r);
  return completed - std::llround(back);
}

long long SringDevice::stream_time(SringStream& s, long long estimate) const {
  // Blocks are stamped when written: a producer that writes several at once
  // (a simulator catching up, a device's burst of DMA completions) stamps
  // them nearly alike, and going back from the stamp of the next one can
  // land before frames already returned. Time never goes backwards here.
  s.last_time = std::max(s.last_time, estimate);
  return s.last_time;
}

void SringDevice::copy_out(SringStream& s, const Block& block, uint64_t from, size_t frames, void* const* buffs,
                           size_t at) {
  const SampleLayout& l = block.layout();
  const size_t in_bytes = l.bits_per_sample / 8;
  const size_t channels = l.channels;
  const std::byte* payload = block.payload().data();
  for (size_t i = 0; i < s.channels.size(); ++i) {
    std::byte* out = static_cast<std::byte*>(buffs[i]) + at * s.out_bytes;
    const std::byte* src = payload + (from * channels + s.channels[i]) * in_bytes;
    if (channels == 1) {
      if (s.convert) {
        s.convert(src, out, frames, 1.0);
      } else {
        std::memcpy(out, src, frames * in_bytes);
      }
      continue;
    }
    if (!s.convert) {
      gather_bytes(src, out, frames, channels, in_bytes);
      continue;
    }
    // The converters take contiguous samples: gather this channel first.
    if (s.scratch.size() < frames * in_bytes) s.scratch.resize(frames * in_bytes);
    gather_bytes(src, s.scratch.data(), frames, channels, in_bytes);
    s.convert(s.scratch.data(), out, frames, 1.0);
  }
}

int SringDevice::readStream(SoapySDR::Stream* stream, void* const* buffs, size_t numElems, int& flags,
                            long long& timeNs, long timeoutUs) {
  std::unique_lock lock(mutex_);
  wait_for_readers();  // one read at a time
  SringStream& s = stream_of(stream);
  flags = 0;
  timeNs = 0;
  if (!s.consumer) return wait_timeout(lock, timeoutUs);
  if (!s.held.empty()) {
    SoapySDR::log(SOAPY_SDR_ERROR, "sring: readStream() while direct access buffers are held: release them first");
    return SOAPY_SDR_NOT_SUPPORTED;
  }
  if (s.end_reported) return after_end(s, flags, timeoutUs);
  size_t done = 0;
  while (done < numElems) {
    if (!s.current) {
      // Wait only for the first samples: then return what there is.
      const int got = fetch(s, timeoutUs, done == 0);
      if (got < 0 && done == 0) return got;
      if (got <= 0) break;
    }
    const Block& block = *s.current;
    if (!s.gap_reported) {
      // A loss before this block: say so once, before its samples, so that
      // the caller knows the next sample is not the one after the last.
      if (done > 0) break;
      s.gap_reported = true;
      ++s.overflows;
      return SOAPY_SDR_OVERFLOW;
    }
    if (done == 0) {
      timeNs = stream_time(s, frame_time(block, s.offset));
      flags |= SOAPY_SDR_HAS_TIME;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(numElems - done, block.frames() - s.offset));
    copy_out(s, block, s.offset, n, buffs, done);
    s.offset += n;
    done += n;
    // Counted as it is copied out, before the block is done (then the
    // Consumer counts it, or not: no_longer_pending()), so that an error
    // below returns frames already counted.
    s.pending_frames += n;
    if (s.offset == block.frames()) {
      if (const int finished = finish_current(s); finished < 0) return done ? static_cast<int>(done) : finished;
    }
  }
  if (at_end(s)) {
    // The last samples carry END_BURST; a read that finds the end with
    // nothing left returns 0 with it.
    if (done == 0) return after_end(s, flags, timeoutUs);
    flags |= SOAPY_SDR_END_BURST;
    s.end_reported = true;
    return static_cast<int>(done);
  }
  return done ? static_cast<int>(done) : SOAPY_SDR_TIMEOUT;
}

int SringDevice::readStreamStatus(SoapySDR::Stream* stream, size_t& chanMask, int& flags, long long& timeNs,
                                  long timeoutUs) {
  std::unique_lock lock(mutex_);
  SringStream& s = stream_of(stream);
  // The losses the reads reported (SOAPY_SDR_OVERFLOW) since the last call,
  // as one SOAPY_SDR_OVERFLOW with the time of the first frame after the
  // latest gap; how many frames: readSetting("samples_dropped").
  if (s.overflows > s.overflows_status) {
    s.overflows_status = s.overflows;
    chanMask = 0;
    for (size_t c : s.channels) chanMask |= size_t{1} << (c % (8 * sizeof(size_t)));
    flags = SOAPY_SDR_HAS_TIME;
    timeNs = s.last_gap_time;
    return SOAPY_SDR_OVERFLOW;
  }
  // Nothing new: wait the timeout (a client may poll in a loop), not holding
  // the device. A loss found meanwhile is told by the next call.
  flags = 0;
  return wait_timeout(lock, timeoutUs);
}

// --- direct buffer access ------------------------------------------------

size_t SringDevice::slot_of(const Block& block) const {
  const uint64_t slots = session_.ring->ring_size() / block_bytes();
  return static_cast<size_t>((block.position() / block_bytes()) % slots);
}

std::string SringDevice::no_direct_access(const SringStream& s) const {
  if (!s.direct) {
    return "sring: direct access is for a one-channel device streamed in its native format (interleaved channels "
           "and conversions go through readStream())";
  }
  // A block's handle is its slot, position / block size modulo the slots,
  // and the slot's address is handle * block size: the block's own address
  // (position modulo the ring size) only if the block size divides the ring
  // size. Otherwise blocks land at ever other offsets, lap after lap.
  const uint64_t ring = session_.ring->ring_size();
  const uint32_t bytes = block_bytes();
  if (bytes == 0 || ring % bytes != 0) {
    return "sring: direct access needs a block size that divides the ring size (block_size=" +
           std::to_string(bytes) + ", ring_size=" + std::to_string(ring) +
           "): configure a power of two, or read with readStream()";
  }
  return {};
}

size_t SringDevice::getNumDirectAccessBuffers(SoapySDR::Stream* stream) {
  std::lock_guard lock(mutex_);
  const SringStream& s = stream_of(stream);
  // 0 is SoapySDR's "no direct access" (acquireReadBuffer() logs why).
  return no_direct_access(s).empty() ? static_cast<size_t>(session_.ring->ring_size() / block_bytes()) : 0;
}

int SringDevice::getDirectAccessBufferAddrs(SoapySDR::Stream* stream, size_t handle, void** buffs) {
  std::lock_guard lock(mutex_);
  const SringStream& s = stream_of(stream);
  if (!no_direct_access(s).empty()) return SOAPY_SDR_NOT_SUPPORTED;
  const uint64_t slots = session_.ring->ring_size() / block_bytes();
  if (handle >= slots) return SOAPY_SDR_NOT_SUPPORTED;
  // A slot's payload in the ring mapping: where every block of that handle is.
  buffs[0] = const_cast<std::byte*>(session_.ring->data()) + handle * block_bytes() + SRING_BLOCK_HEADER_SIZE;
  return 0;
}

int SringDevice::acquireReadBuffer(SoapySDR::Stream* stream, size_t& handle, const void** buffs, int& flags,
                                   long long& timeNs, long timeoutUs) {
  std::unique_lock lock(mutex_);
  wait_for_readers();  // one read at a time
  SringStream& s = stream_of(stream);
  flags = 0;
  timeNs = 0;
  if (const std::string why = no_direct_access(s); !why.empty()) {
    SoapySDR::log(SOAPY_SDR_ERROR, why);
    return SOAPY_SDR_NOT_SUPPORTED;
  }
  if (!s.consumer) return wait_timeout(lock, timeoutUs);
  if (s.current && s.offset > 0) {
    SoapySDR::log(SOAPY_SDR_ERROR, "sring: acquireReadBuffer() while readStream() is part-way through a block");
    return SOAPY_SDR_NOT_SUPPORTED;
  }
  if (s.end_reported) return after_end(s, flags, timeoutUs);
  if (!s.current) {
    const int got = fetch(s, timeoutUs, true);
    if (got < 0) return got;
    if (got == 0) {
      // Blocks still held do not delay the end: nothing more will come.
      if (handed_all(s)) return after_end(s, flags, timeoutUs);
      return SOAPY_SDR_TIMEOUT;
    }
  }
  const Block block = *s.current;
  if (!s.gap_reported) {
    s.gap_reported = true;
    ++s.overflows;
    return SOAPY_SDR_OVERFLOW;
  }
  s.current.reset();
  handle = slot_of(block);
  s.held.push_back({handle, block.frames(), s.current_lost, false});
  // The block's address in the first copy of the mirrored mapping, the one
  // getDirectAccessBufferAddrs() gives (the Consumer's view of a run of
  // blocks may continue into the second copy).
  buffs[0] = session_.ring->data() + block.position() % session_.ring->ring_size() + SRING_BLOCK_HEADER_SIZE;
  timeNs = stream_time(s, frame_time(block, 0));
  flags = SOAPY_SDR_HAS_TIME;
  s.pending_frames += block.frames();
  if (handed_all(s)) {
    flags |= SOAPY_SDR_END_BURST;
    s.end_reported = true;
  }
  return static_cast<int>(block.frames());
}

void SringDevice::releaseReadBuffer(SoapySDR::Stream* stream, size_t handle) {
  std::lock_guard lock(mutex_);
  // Releasing moves the ring's tail, which a read waiting unlocked looks at.
  wait_for_readers();
  SringStream& s = stream_of(stream);
  auto it = std::find_if(s.held.begin(), s.held.end(), [&](const auto& h) { return h.handle == handle && !h.released; });
  if (it == s.held.end()) {
    SoapySDR::log(SOAPY_SDR_ERROR, "sring: releaseReadBuffer(" + std::to_string(handle) + "): not acquired");
    return;
  }
  it->released = true;
  // Consumer::done() releases oldest first: release the run of released
  // buffers at the front; a later one waits for those before it.
  uint64_t run = 0;
  while (run < s.held.size() && s.held[run].released) ++run;
  if (run == 0) return;
  auto counted = s.consumer->done(run);
  for (uint64_t i = 0; i < run; ++i) {
    no_longer_pending(s, s.held.front().frames, s.held.front().lost);
    s.held.pop_front();
  }
  if (!counted) {
    SoapySDR::log(SOAPY_SDR_ERROR, "sring: " + counted.error().message);
    return;
  }
  s.not_counted += run - *counted;
}

}  // namespace sring::soapy
