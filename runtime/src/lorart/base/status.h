// Status: the runtime's error type. As cheap as an int when OK (a null
// pointer); carries a code, a message and added context otherwise.
#ifndef LORART_BASE_STATUS_H_
#define LORART_BASE_STATUS_H_

#include <memory>
#include <string>
#include <utility>

namespace lorart {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad user input: a file, a flag, a field
  kNotFound,         // a file or a named tensor is missing
  kOutOfRange,       // an offset or an index outside its bounds
  kDataLoss,         // a truncated or corrupt file
  kUnimplemented,    // valid input we do not support yet
  kInternal,         // a bug in lorart
  kUnavailable,      // a device or library is not there (CUDA, ...)
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message);
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  // The message with every context prefix, outermost first:
  // "while loading a.bin: tensor 'x': offset out of range".
  std::string message() const;
  // "INVALID_ARGUMENT: <message>", or "OK".
  std::string ToString() const;
  // Adds context in front of the message (no-op on OK).
  Status& WithContext(std::string context);

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::unique_ptr<Rep> rep_;
};

inline Status OkStatus() { return Status(); }
Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status OutOfRangeError(std::string message);
Status DataLossError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
Status UnavailableError(std::string message);

// printf-style formatting into std::string.
std::string StrFormat(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Value-or-error.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  // An OK status carries no value: it becomes an INTERNAL error.
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = InternalError("StatusOr constructed from an OK status");
  }
  StatusOr(T value) : value_(std::move(value)), has_value_(true) {}  // NOLINT
  bool ok() const { return has_value_; }
  const Status& status() const { return status_; }
  T& value() & { return value_; }
  const T& value() const& { return value_; }
  T&& value() && { return std::move(value_); }
  T* operator->() { return &value_; }
  const T* operator->() const { return &value_; }
  T& operator*() { return value_; }
  const T& operator*() const { return value_; }

 private:
  Status status_;
  T value_{};
  bool has_value_ = false;
};

}  // namespace lorart

// LORA_RETURN_IF_ERROR(expr) or LORA_RETURN_IF_ERROR(expr, "while %s", x):
// returns the status of `expr` if it is not OK, with the optional context.
#define LORA_RETURN_IF_ERROR(expr, ...)                                  \
  do {                                                                   \
    ::lorart::Status _lora_status = (expr);                              \
    if (!_lora_status.ok()) {                                            \
      __VA_OPT__(_lora_status.WithContext(::lorart::StrFormat(__VA_ARGS__));) \
      return _lora_status;                                               \
    }                                                                    \
  } while (0)

#define LORA_CONCAT_INNER_(a, b) a##b
#define LORA_CONCAT_(a, b) LORA_CONCAT_INNER_(a, b)
// LORA_ASSIGN_OR_RETURN(auto x, StatusOrExpr);
#define LORA_ASSIGN_OR_RETURN(lhs, expr)                                 \
  auto LORA_CONCAT_(_lora_or_, __LINE__) = (expr);                       \
  if (!LORA_CONCAT_(_lora_or_, __LINE__).ok())                           \
    return LORA_CONCAT_(_lora_or_, __LINE__).status();                   \
  lhs = std::move(LORA_CONCAT_(_lora_or_, __LINE__)).value()

#endif  // LORART_BASE_STATUS_H_
