"""The DVD-rental schema as a MySQL -> SQLite dump writes it.

Backquoted names, MySQL's declared types kept as text (`smallint(5) unsigned`, which SQLite's
grammar only takes quoted, `"smallint(5) unsigned"`; `year(4)`,
`decimal(5,2)`, `tinyint(1)`, `timestamp`, `json`), AUTO_INCREMENT keys turned into
`integer PRIMARY KEY AUTOINCREMENT` (small tables keep `tinyint(3) unsigned` keys, so they are
no rowid alias), ENUM as text with a CHECK, SET as comma-separated text, foreign keys inline
(the staff <-> store cycle too: SQLite checks none unless PRAGMA foreign_keys is on), ON UPDATE
CURRENT_TIMESTAMP as a trigger, triggers and views in SQLite syntax. No geometry, routines or
FULLTEXT.
"""

from __future__ import annotations

LAST_UPDATE = "`last_update` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP"
FK = "ON DELETE RESTRICT ON UPDATE CASCADE"
RATING_CHECK = "CHECK (`rating` IN ('G','PG','PG-13','R','NC-17'))"

TABLES: tuple[str, ...] = (
    f"""CREATE TABLE `actor` (
  `actor_id` integer NOT NULL PRIMARY KEY AUTOINCREMENT,
  `first_name` varchar(45) NOT NULL,
  `last_name` varchar(45) NOT NULL,
  {LAST_UPDATE}
)""",
    f"""CREATE TABLE `country` (
  `country_id` integer NOT NULL PRIMARY KEY AUTOINCREMENT,
  `country` varchar(50) NOT NULL,
  {LAST_UPDATE}
)""",
    f"""CREATE TABLE `city` (
  `city_id` integer NOT NULL PRIMARY KEY AUTOINCREMENT,
  `city` varchar(50) NOT NULL,
  `country_id` "smallint(5) unsigned" NOT NULL REFERENCES `country` (`country_id`) {FK},
  {LAST_UPDATE}
)""",
    f"""CREATE TABLE `address` (
  `address_id` integer NOT NULL PRIMARY KEY AUTOINCREMENT,
  `address` varchar(50) NOT NULL,
  `address2` varchar(50) DEFAULT NULL,
  `district` varchar(20) NOT NULL,
  `city_id` "smallint(5) unsigned" NOT NULL REFERENCES `city` (`city_id`) {FK},
  `postal_code` varchar(10) DEFAULT NULL,
  `phone` varchar(20) NOT NULL,
  {LAST_UPDATE}
)""",
    f"""CREATE TABLE `category` (
  `category_id` "tinyint(3) unsigned" NOT NULL,
  `name` varchar(25) NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (`category_id`)
)""",
    f"""CREATE TABLE `language` (
  `language_id` "tinyint(3) unsigned" NOT NULL,
  `name` char(20) NOT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (`language_id`)
)""",
    f"""CREATE TABLE `film` (
  `film_id` integer NOT NULL PRIMARY KEY AUTOINCREMENT,
  `title` varchar(128) NOT NULL,
  `description` text DEFAULT NULL,
  `release_year` year(4) DEFAULT NULL,
  `language_id` "tinyint(3) unsigned" NOT NULL REFERENCES `language` (`language_id`) {FK},
  `original_language_id` "tinyint(3) unsigned" DEFAULT NULL
    REFERENCES `language` (`language_id`) {FK},
  `rental_duration` "tinyint(3) unsigned" NOT NULL DEFAULT 3,
  `rental_rate` decimal(4,2) NOT NULL DEFAULT 4.99,
  `length` "smallint(5) unsigned" DEFAULT NULL,
  `replacement_cost` decimal(5,2) NOT NULL DEFAULT 19.99,
  `rating` text DEFAULT 'G' {RATING_CHECK},
  `special_features` text DEFAULT NULL,
  {LAST_UPDATE}
)""",
    f"""CREATE TABLE `film_actor` (
  `actor_id` "smallint(5) unsigned" NOT NULL REFERENCES `actor` (`actor_id`) {FK},
  `film_id` "smallint(5) unsigned" NOT NULL REFERENCES `film` (`film_id`) {FK},
  {LAST_UPDATE},
  PRIMARY KEY (`actor_id`, `film_id`)
)""",
    f"""CREATE TABLE `film_category` (
  `film_id` "smallint(5) unsigned" NOT NULL REFERENCES `film` (`film_id`) {FK},
  `category_id` "tinyint(3) unsigned" NOT NULL REFERENCES `category` (`category_id`) {FK},
  {LAST_UPDATE},
  PRIMARY KEY (`film_id`, `category_id`)
)""",
    """CREATE TABLE `film_text` (
  `film_id` smallint(6) NOT NULL,
  `title` varchar(255) NOT NULL,
  `description` text,
  PRIMARY KEY (`film_id`)
)""",
    f"""CREATE TABLE `store` (
  `store_id` "tinyint(3) unsigned" NOT NULL,
  `manager_staff_id` "tinyint(3) unsigned" NOT NULL REFERENCES `staff` (`staff_id`) {FK},
  `address_id` "smallint(5) unsigned" NOT NULL REFERENCES `address` (`address_id`) {FK},
  {LAST_UPDATE},
  PRIMARY KEY (`store_id`),
  CONSTRAINT `idx_unique_manager` UNIQUE (`manager_staff_id`)
)""",
    f"""CREATE TABLE `staff` (
  `staff_id` "tinyint(3) unsigned" NOT NULL,
  `first_name` varchar(45) NOT NULL,
  `last_name` varchar(45) NOT NULL,
  `address_id` "smallint(5) unsigned" NOT NULL REFERENCES `address` (`address_id`) {FK},
  `picture` blob DEFAULT NULL,
  `email` varchar(50) DEFAULT NULL,
  `store_id` "tinyint(3) unsigned" NOT NULL REFERENCES `store` (`store_id`) {FK},
  `active` tinyint(1) NOT NULL DEFAULT 1,
  `username` varchar(16) NOT NULL,
  `password` varchar(40) DEFAULT NULL,
  {LAST_UPDATE},
  PRIMARY KEY (`staff_id`)
)""",
    f"""CREATE TABLE `customer` (
  `customer_id` integer NOT NULL PRIMARY KEY AUTOINCREMENT,
  `store_id` "tinyint(3) unsigned" NOT NULL REFERENCES `store` (`store_id`) {FK},
  `first_name` varchar(45) NOT NULL,
  `last_name` varchar(45) NOT NULL,
  `email` varchar(50) DEFAULT NULL,
  `address_id` "smallint(5) unsigned" NOT NULL REFERENCES `address` (`address_id`) {FK},
  `active` tinyint(1) NOT NULL DEFAULT 1,
  `create_date` datetime NOT NULL,
  `preferences` json DEFAULT NULL,
  `last_update` timestamp NULL DEFAULT CURRENT_TIMESTAMP
)""",
    f"""CREATE TABLE `inventory` (
  `inventory_id` integer NOT NULL PRIMARY KEY AUTOINCREMENT,
  `film_id` "smallint(5) unsigned" NOT NULL REFERENCES `film` (`film_id`) {FK},
  `store_id` "tinyint(3) unsigned" NOT NULL REFERENCES `store` (`store_id`) {FK},
  {LAST_UPDATE}
)""",
    f"""CREATE TABLE `rental` (
  `rental_id` integer NOT NULL PRIMARY KEY AUTOINCREMENT,
  `rental_date` datetime NOT NULL,
  `inventory_id` "mediumint(8) unsigned" NOT NULL REFERENCES `inventory` (`inventory_id`) {FK},
  `customer_id` "smallint(5) unsigned" NOT NULL REFERENCES `customer` (`customer_id`) {FK},
  `return_date` datetime DEFAULT NULL,
  `staff_id` "tinyint(3) unsigned" NOT NULL REFERENCES `staff` (`staff_id`) {FK},
  {LAST_UPDATE},
  CONSTRAINT `rental_date` UNIQUE (`rental_date`, `inventory_id`, `customer_id`)
)""",
    f"""CREATE TABLE `payment` (
  `payment_id` integer NOT NULL PRIMARY KEY AUTOINCREMENT,
  `customer_id` "smallint(5) unsigned" NOT NULL REFERENCES `customer` (`customer_id`) {FK},
  `staff_id` "tinyint(3) unsigned" NOT NULL REFERENCES `staff` (`staff_id`) {FK},
  `rental_id` "int(10) unsigned" DEFAULT NULL REFERENCES `rental` (`rental_id`)
    ON DELETE SET NULL ON UPDATE CASCADE,
  `amount` decimal(5,2) NOT NULL CHECK (`amount` >= 0),
  `payment_date` datetime NOT NULL,
  {LAST_UPDATE}
)""",
)

INDEXES: tuple[str, ...] = (
    "CREATE INDEX `idx_actor_last_name` ON `actor` (`last_name`)",
    "CREATE INDEX `idx_fk_country_id` ON `city` (`country_id`)",
    "CREATE INDEX `idx_fk_city_id` ON `address` (`city_id`)",
    "CREATE INDEX `idx_title` ON `film` (`title`)",
    "CREATE INDEX `idx_fk_language_id` ON `film` (`language_id`)",
    "CREATE INDEX `idx_fk_original_language_id` ON `film` (`original_language_id`)",
    "CREATE INDEX `idx_fk_film_id` ON `film_actor` (`film_id`)",
    "CREATE INDEX `idx_fk_store_address_id` ON `store` (`address_id`)",
    "CREATE INDEX `idx_fk_staff_store_id` ON `staff` (`store_id`)",
    "CREATE INDEX `idx_fk_customer_store_id` ON `customer` (`store_id`)",
    "CREATE INDEX `idx_last_name` ON `customer` (`last_name`)",
    "CREATE INDEX `idx_store_id_film_id` ON `inventory` (`store_id`, `film_id`)",
    "CREATE INDEX `idx_fk_inventory_id` ON `rental` (`inventory_id`)",
    "CREATE INDEX `idx_fk_payment_customer_id` ON `payment` (`customer_id`)",
)

TRIGGERS: dict[str, str] = {
    "ins_film": """CREATE TRIGGER `ins_film` AFTER INSERT ON `film`
BEGIN
  INSERT INTO `film_text` (`film_id`, `title`, `description`)
    VALUES (new.`film_id`, new.`title`, new.`description`);
END""",
    "upd_film": """CREATE TRIGGER `upd_film` AFTER UPDATE OF `title`, `description`, `film_id`
ON `film`
BEGIN
  UPDATE `film_text` SET `title` = new.`title`, `description` = new.`description`,
    `film_id` = new.`film_id` WHERE `film_id` = old.`film_id`;
END""",
    "del_film": """CREATE TRIGGER `del_film` AFTER DELETE ON `film`
BEGIN
  DELETE FROM `film_text` WHERE `film_id` = old.`film_id`;
END""",
    "film_last_update": """CREATE TRIGGER `film_last_update` AFTER UPDATE ON `film`
WHEN new.`last_update` = old.`last_update`
BEGIN
  UPDATE `film` SET `last_update` = current_timestamp WHERE `film_id` = new.`film_id`;
END""",
    "payment_date": """CREATE TRIGGER `payment_date` AFTER INSERT ON `payment`
WHEN new.`payment_date` = ''
BEGIN
  UPDATE `payment` SET `payment_date` = datetime('now') WHERE `payment_id` = new.`payment_id`;
END""",
}

VIEWS: dict[str, str] = {
    "customer_list": """CREATE VIEW `customer_list` AS
SELECT cu.`customer_id` AS `ID`, cu.`first_name` || ' ' || cu.`last_name` AS `name`,
       a.`address` AS `address`, a.`postal_code` AS `zip code`, a.`phone` AS `phone`,
       city.`city` AS `city`, country.`country` AS `country`,
       CASE WHEN cu.`active` THEN 'active' ELSE '' END AS `notes`, cu.`store_id` AS `SID`
  FROM `customer` AS cu
  JOIN `address` AS a ON cu.`address_id` = a.`address_id`
  JOIN `city` ON a.`city_id` = city.`city_id`
  JOIN `country` ON city.`country_id` = country.`country_id`""",
    "film_list": """CREATE VIEW `film_list` AS
SELECT film.`film_id` AS `FID`, film.`title` AS `title`, film.`description` AS `description`,
       category.`name` AS `category`, film.`rental_rate` AS `price`, film.`length` AS `length`,
       film.`rating` AS `rating`,
       group_concat(actor.`first_name` || ' ' || actor.`last_name`, ', ') AS `actors`
  FROM `film`
  LEFT JOIN `film_category` ON film_category.`film_id` = film.`film_id`
  LEFT JOIN `category` ON category.`category_id` = film_category.`category_id`
  LEFT JOIN `film_actor` ON film.`film_id` = film_actor.`film_id`
  LEFT JOIN `actor` ON film_actor.`actor_id` = actor.`actor_id`
 GROUP BY film.`film_id`, category.`name`""",
}
