variable "namespace" {
  description = "Where checkout runs."
  type        = string
  default     = "shop"
}

variable "replicas" {
  description = "Stable replicas; the canary runs beside them."
  type        = number
  default     = 10
}

variable "stable_image" {
  description = "The version serving today; Brahma releases the next one over it."
  type        = string
  default     = "registry.example.com/checkout:2.4.0"
}
