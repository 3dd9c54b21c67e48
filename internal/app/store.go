package app

import (
	"context"
	"path/filepath"

	"crm/internal/config"
	"crm/internal/readmodel"
	"crm/internal/readmodel/sqlite"
)

// OpenStore opens the read model the configuration selects: MongoDB when
// MONGODB_URL is set, else SQLite in DATA_DIR/readmodel.db.
func OpenStore(ctx context.Context, cfg config.Config) (readmodel.Store, error) {
	if cfg.MongoURL != "" {
		return openMongo(ctx, cfg)
	}
	return sqlite.Open(ctx, filepath.Join(cfg.DataDir, "readmodel.db"))
}
