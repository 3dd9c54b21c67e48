package app

import (
	"context"

	"crm/internal/config"
	"crm/internal/readmodel"
	"crm/internal/readmodel/mongodb"
)

func openMongo(ctx context.Context, cfg config.Config) (readmodel.Store, error) {
	return mongodb.Open(ctx, cfg.MongoURL, cfg.MongoDB)
}
