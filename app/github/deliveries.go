package github

import "time"

// deliveryRetention is how long deliveries are kept for de-duplication and the log
// (GitHub redelivers for up to three days).
const deliveryRetention = 30 * 24 * time.Hour
